// A tiny nested module whose import path sits under the upstream provider's
// module path, so that Go's internal-package rule (checked by import path in
// module mode) lets it import .../internal/provider. The wrapper module wires
// it in with a directory replace; it has no code of its own beyond shim.go.
module github.com/terraform-providers/terraform-provider-docker/pghashim

go 1.25.11

require (
	github.com/hashicorp/terraform-plugin-sdk/v2 v2.40.1
	github.com/terraform-providers/terraform-provider-docker v0.0.0
)
