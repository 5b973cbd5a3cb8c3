//go:build tools

// Package tools pins the Kubernetes control-plane main packages (and kubectl of the same version) in this
// module's go.mod/go.sum; scripts/cluster.sh builds them with `go build k8s.io/kubernetes/cmd/<name>`
// from this directory.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
