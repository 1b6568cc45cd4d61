// Package okeraauth is the module xcaddy builds into Caddy. Importing it
// registers the okera_auth and okera_jwks handlers, their Caddyfile
// directives and the caddy okera-* commands; everything lives in the
// caddymodule package, and the Caddy-free logic in validator and resolver.
package okeraauth

import (
	// Registers the Caddy modules, directives and commands.
	_ "github.com/okeragate/caddy-okera-auth/caddymodule"
)
