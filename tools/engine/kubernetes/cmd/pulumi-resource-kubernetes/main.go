// Command pulumi-resource-kubernetes serves the Kubernetes provider from
// github.com/pulumi/pulumi-kubernetes/provider/v4, like that module's own main does, and exits once the
// engine that started it is gone.
//
// The two embedded files are not in the module (upstream makes them with `go generate`); scripts/engine.sh
// writes them next to this file with ../../internal/genembed before building. They are gitignored.
package main

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"syscall"
	"time"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

var engineAddress = regexp.MustCompile(`^[^:\s]+:\d+$`)

// watchEngine exits the process once nothing listens at the engine's address any more (a `pulumi`
// killed with SIGKILL cannot stop its plugins). The SDK's own health check (pkg/v3 resource/provider
// Main, every 5 minutes) cancels a context that the gRPC server does not wait on, so without this the
// provider would run until someone kills it.
func watchEngine() {
	if len(os.Args) < 2 || !engineAddress.MatchString(os.Args[len(os.Args)-1]) {
		return
	}
	addr := os.Args[len(os.Args)-1]
	go func() {
		for range time.Tick(2 * time.Second) {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				_ = conn.Close()
				continue
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				fmt.Fprintln(os.Stderr, "pulumi-resource-kubernetes: the engine is gone; exiting")
				os.Exit(1)
			}
		}
	}()
}

func main() {
	watchEngine()
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
