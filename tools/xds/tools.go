//go:build tools

// Package tools pins istiod's main package in this module's go.mod/go.sum: scripts/istiod.sh builds
// `istio.io/istio/pilot/cmd/pilot-discovery` from the same module graph as the xDS client in this
// directory, so the go-control-plane types the client decodes are the ones istiod encodes.
package tools

import (
	_ "istio.io/istio/pilot/cmd/pilot-discovery"
)
