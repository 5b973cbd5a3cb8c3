// Command genembed writes the two files that cmd/pulumi-resource-kubernetes embeds, from the
// schema.json and terraform-mapping.json shipped in the provider module:
//
//	go run ./internal/genembed <provider module dir> <output dir> <version>
//
// Like the upstream `go generate` step it stamps the version into the schema and minifies both files.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: genembed <provider module dir> <output dir> <version>")
		os.Exit(2)
	}
	src, out, version := os.Args[1], os.Args[2], os.Args[3]
	if err := run(src, out, version); err != nil {
		fmt.Fprintln(os.Stderr, "genembed:", err)
		os.Exit(1)
	}
}

func run(src, out, version string) error {
	dir := filepath.Join(src, "cmd", "pulumi-resource-kubernetes")

	raw, err := os.ReadFile(filepath.Join(dir, "schema.json"))
	if err != nil {
		return err
	}
	var schema map[string]json.RawMessage
	if err := json.Unmarshal(raw, &schema); err != nil {
		return fmt.Errorf("schema.json: %w", err)
	}
	v, err := json.Marshal(version)
	if err != nil {
		return err
	}
	schema["version"] = v
	schemaOut, err := json.Marshal(schema)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "schema-embed.json"), schemaOut, 0o644); err != nil {
		return err
	}

	raw, err = os.ReadFile(filepath.Join(dir, "terraform-mapping.json"))
	if err != nil {
		return err
	}
	var mapping bytes.Buffer
	if err := json.Compact(&mapping, raw); err != nil {
		return fmt.Errorf("terraform-mapping.json: %w", err)
	}
	return os.WriteFile(filepath.Join(out, "terraform-mapping-embed.json"), mapping.Bytes(), 0o644)
}
