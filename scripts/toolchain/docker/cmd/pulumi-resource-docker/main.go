// pulumi-resource-docker: the resource plugin the Pulumi engine starts for
// @pulumi/docker resources. It serves the bridged upstream provider over gRPC
// and answers GetSchema with the schema tfgen produced (embedded below).
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"

	"pgha/toolchain/docker/info"
)

// schema.json is written here by build.sh (pulumi-tfgen-docker schema); it is
// generated, not committed.
//
//go:embed schema.json
var schema []byte

func main() {
	tfbridge.Main("docker", info.Version, info.Provider(""), schema)
}
