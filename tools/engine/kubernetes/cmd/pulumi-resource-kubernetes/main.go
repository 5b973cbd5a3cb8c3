// Command pulumi-resource-kubernetes serves the Kubernetes provider from
// github.com/pulumi/pulumi-kubernetes/provider/v4, like that module's own main does.
//
// The two embedded files are not in the module (upstream makes them with `go generate`); scripts/engine.sh
// writes them next to this file with ../../internal/genembed before building. They are gitignored.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
