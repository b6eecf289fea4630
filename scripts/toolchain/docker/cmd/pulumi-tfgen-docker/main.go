// pulumi-tfgen-docker: generates the Pulumi package schema from the same
// mapping the plugin uses (build.sh runs: pulumi-tfgen-docker schema
// --skip-examples --out DIR). PGHA_DOCKER_UPSTREAM_DIR, when set, is the
// upstream module's source directory, read only for documentation.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen"
	"github.com/spf13/afero"

	"pgha/toolchain/docker/info"
)

func main() {
	prov := info.Provider(os.Getenv("PGHA_DOCKER_UPSTREAM_DIR"))
	if err := prov.P.InternalValidate(); err != nil {
		fmt.Fprintf(os.Stderr, "upstream provider failed validation: %v\n", err)
		os.Exit(1)
	}
	tfgen.MainWithCustomGenerate("docker", info.Version, prov, func(opts tfgen.GeneratorOptions) error {
		g, err := tfgen.NewGenerator(opts)
		if err != nil {
			return err
		}
		if _, err := g.Generate(context.Background()); err != nil {
			return err
		}
		if opts.Language != tfgen.Schema {
			return nil
		}
		// tfgen leaves "version" out of schema.json on purpose (stable diffs in
		// git); our schema is generated per build and embedded, so stamp it.
		return stampVersion(opts.Root, "schema.json", info.Version)
	})
}

func stampVersion(fs afero.Fs, name, version string) error {
	raw, err := afero.ReadFile(fs, name)
	if err != nil {
		return err
	}
	var spec map[string]json.RawMessage
	if err := json.Unmarshal(raw, &spec); err != nil {
		return err
	}
	if spec["version"], err = json.Marshal(version); err != nil {
		return err
	}
	out, err := json.MarshalIndent(spec, "", "    ")
	if err != nil {
		return err
	}
	return afero.WriteFile(fs, name, out, 0o644)
}
