//go:build tools

// Package tools pins the Pulumi CLI's main package in this module's go.mod/go.sum; scripts/engine.sh
// builds it with `go build github.com/pulumi/pulumi/pkg/v3/cmd/pulumi` from this directory.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
