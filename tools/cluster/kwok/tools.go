//go:build tools

// Package tools pins kwok's main package in this module's go.mod/go.sum; scripts/cluster.sh builds it
// with `go build sigs.k8s.io/kwok/cmd/kwok` and copies its stage files (kustomize/stage/...) out of the
// same module version.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
