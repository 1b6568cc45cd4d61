// Package integration holds the black-box test suite of caddy-okera-auth:
// every test runs the real Caddy binary (built by xcaddy.sh, found through
// CADDY_BIN or ../caddy) with a Caddyfile, and talks to it over loopback HTTP
// with tokens signed in the test, a recording upstream and a programmable
// remote validation endpoint. Nothing here imports the module's own packages,
// so the suite pins down the contract the README states, not the implementation.
//
// Run it with `make integration`, or:
//
//	./xcaddy.sh && CADDY_BIN=$PWD/caddy go test -count=1 ./integration/...
package integration
