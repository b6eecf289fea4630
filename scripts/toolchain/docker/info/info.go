// Package info holds the one ProviderInfo that both programs use: tfgen turns
// it into the Pulumi schema, and the resource plugin uses it at run time to
// translate between Pulumi and Terraform names and shapes. The two must agree,
// so they share this package.
//
// What must match @pulumi/docker 5.2.0 (the npm SDK the project compiles
// against): the package name "docker", the resource tokens, the property
// names, and which single-block Terraform lists are flattened to one object
// (MaxItemsOne). check-schema.mjs verifies all of this against the SDK's .d.ts.
//
// MaxItemsOne: the bridge's default (flatten a list with MaxItems 1 to one
// object) gives exactly the SDK's shapes for the pinned upstream, so no field
// overrides it except registry_auth below. If an upstream bump changes a
// block's MaxItems, check-schema.mjs fails; pin the old shape here then with
// Fields: {"block": {MaxItemsOne: tfbridge.True()/False()}} (nested blocks
// via Elem: &tfbridge.SchemaInfo{Fields: ...}).
package info

import (
	"context"
	"runtime"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/terraform-providers/terraform-provider-docker/pghashim"
)

// Version is set at link time by build.sh (-X pgha/toolchain/docker/info.Version=5.2.0).
var Version = "0.0.0-dev"

const (
	pkg = "docker"
	mod = "index"
)

// Provider returns the bridge mapping. upstreamDir, when not empty, points
// tfgen at the upstream sources for docs; the plugin passes "".
func Provider(upstreamDir string) tfbridge.ProviderInfo {
	p := tfbridge.ProviderInfo{
		P:                shimv2.NewProvider(pghashim.NewProvider(Version)),
		Name:             "docker",
		Version:          Version,
		Description:      "A Pulumi package for interacting with Docker in Pulumi programs",
		Keywords:         []string{"pulumi", "docker"},
		License:          "Apache-2.0",
		UpstreamRepoPath: upstreamDir,

		Config: map[string]*tfbridge.SchemaInfo{
			// Same default as @pulumi/docker: $DOCKER_HOST, else the local socket.
			"host": {
				Default: &tfbridge.DefaultInfo{
					EnvVars: []string{"DOCKER_HOST"},
					ComputeDefault: func(context.Context, tfbridge.ComputeDefaultOptions) (interface{}, error) {
						if runtime.GOOS == "windows" {
							return "npipe:////./pipe/docker_engine", nil
						}
						return "unix:///var/run/docker.sock", nil
					},
				},
			},
			// A set; the SDK keeps the Terraform name singular ("registryAuth").
			"registry_auth": {Name: "registryAuth", MaxItemsOne: tfbridge.False()},
		},

		// The five resources pgha uses, with the SDK's tokens. The rest keep
		// @pulumi/docker's names too where they differ from the automatic ones.
		Resources: map[string]*tfbridge.ResourceInfo{
			"docker_service": {Tok: tfbridge.MakeResource(pkg, mod, "Service")},
			"docker_network": {Tok: tfbridge.MakeResource(pkg, mod, "Network")},
			"docker_volume":  {Tok: tfbridge.MakeResource(pkg, mod, "Volume")},
			// Terraform's docker_config is ServiceConfig in the SDK.
			"docker_config": {Tok: tfbridge.MakeResource(pkg, mod, "ServiceConfig")},
			"docker_secret": {Tok: tfbridge.MakeResource(pkg, mod, "Secret")},

			"docker_container": {
				Tok:                 tfbridge.MakeResource(pkg, mod, "Container"),
				DeleteBeforeReplace: true,
				Fields: map[string]*tfbridge.SchemaInfo{
					// One command, not "commands"; not "networksAdvanceds".
					"command":           {Name: "command"},
					"networks_advanced": {Name: "networksAdvanced"},
				},
			},
			"docker_image": {
				Tok: tfbridge.MakeResource(pkg, mod, "RemoteImage"),
				// Having an entry keeps SetAutonaming off "name": it names an
				// image to pull, it is not ours to invent.
				Fields: map[string]*tfbridge.SchemaInfo{"name": {Name: "name"}},
			},
		},
		DataSources: map[string]*tfbridge.DataSourceInfo{
			"docker_image": {Tok: tfbridge.MakeDataSource(pkg, mod, "getRemoteImage")},
		},
	}

	// Everything not listed above: docker_foo_bar -> docker:index/fooBar:FooBar
	// (and getFooBar for data sources), which is what the SDK uses for them.
	p.MustComputeTokens(tokens.SingleModule("docker_", mod, tokens.MakeStandard(pkg)))
	// Like @pulumi/docker: a "name" input left out gets <resource name>-<random>.
	p.SetAutonaming(255, "-")
	return p
}
