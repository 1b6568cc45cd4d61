#!/usr/bin/env bash
# Builds ./caddy: Caddy v2.11.9 with this module from the working tree.
# xcaddy comes through `go run` at a pinned version; nothing is installed.
# The @v0.0.0 label makes xcaddy use the local directory as is instead of
# asking the module proxy for this unpublished module.
# Extra arguments go to `xcaddy build`, e.g. --with another/plugin.
set -euo pipefail
cd "$(dirname "$0")"
XCADDY_VERSION=${XCADDY_VERSION:-v0.4.5}
CADDY_VERSION=${CADDY_VERSION:-v2.11.9}
OUTPUT=${OUTPUT:-./caddy}
exec go run "github.com/caddyserver/xcaddy/cmd/xcaddy@${XCADDY_VERSION}" build "${CADDY_VERSION}" \
	--with "github.com/okeragate/caddy-okera-auth@v0.0.0=." \
	--output "${OUTPUT}" "$@"
