//go:build tools

// Package tools pins kwok's two main packages in this module's go.mod/go.sum: scripts/cluster.sh builds
// `sigs.k8s.io/kwok/cmd/kwok` (the fake kubelets) and `sigs.k8s.io/kwok/cmd/kwokctl` (which creates,
// starts, stops and deletes the local cluster, and writes kwok's default stages) from the same module
// version.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
	_ "sigs.k8s.io/kwok/cmd/kwokctl"
)
