// Package pghashim exposes the upstream provider's SDKv2 half to the bridge.
//
// The upstream (kreuzwerker/terraform-provider-docker) keeps its constructor in
// internal/provider, which only packages under its own import path may import.
// This package lives under that path (see go.mod) and re-exports it.
//
// The upstream binary muxes SDKv2 with a terraform-plugin-framework provider,
// but the framework half only carries docker_compose, the docker_containers
// data source and actions, none of which @pulumi/docker 5.2.0 has. Every
// resource pgha uses (service, network, volume, config, secret) and the whole
// provider configuration are SDKv2, so the bridge's plain sdk-v2 shim is enough.
package pghashim

import (
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"
	"github.com/terraform-providers/terraform-provider-docker/internal/provider"
)

// NewProvider returns the upstream SDKv2 provider. The version string is only
// used by upstream in its user agent.
func NewProvider(version string) *schema.Provider {
	return provider.New(version)()
}
