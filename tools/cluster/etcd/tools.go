//go:build tools

// Package tools pins etcd's main package (go.etcd.io/etcd/server/v3, whose main.go calls etcdmain.Main)
// in this module's go.mod/go.sum; scripts/cluster.sh builds it with `go build go.etcd.io/etcd/server/v3`.
package tools

import _ "go.etcd.io/etcd/server/v3"
