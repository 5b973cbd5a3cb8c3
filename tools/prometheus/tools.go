//go:build tools

// Package tools pins Prometheus's main package in this module's go.mod/go.sum: scripts/cluster.sh builds
// `github.com/prometheus/prometheus/cmd/prometheus` from this module (upstream's own go.mod selects the
// dependency versions; `go install ...@version` would do the same, but this keeps the pin checkable
// against versions.json and the build offline-cacheable like the rest of the control plane). Why a
// module of its own, outside tools/cluster: tools/cluster/README.md ("Prometheus").
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
)
