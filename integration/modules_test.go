package integration

import (
	"strings"
	"testing"
)

// README "The okera_auth directive", "Commands": both modules are listed, and
// every okera-* command explains itself with --help.
func TestModulesAndCommandHelp(t *testing.T) {
	dir := t.TempDir()
	res := runCaddy(t, dir, "list-modules")
	for _, id := range []string{"http.handlers.okera_auth", "http.handlers.okera_jwks"} {
		if !strings.Contains(res.Stdout, id+"\n") {
			t.Errorf("caddy list-modules does not show %s", id)
		}
	}
	for cmd, flags := range map[string][]string{
		"okera-keygen": {"--dir", "--alg", "--bits", "--ttl", "--force"},
		"okera-token":  {"--key", "--sub", "--groups", "--ttl", "--alg", "--claim"},
		"okera-verify": {"--public-key", "--remote"},
	} {
		res := runCaddy(t, dir, cmd, "--help")
		if res.ExitCode != 0 {
			t.Errorf("caddy %s --help exited %d", cmd, res.ExitCode)
		}
		for _, f := range flags {
			if !strings.Contains(res.Output(), f) {
				t.Errorf("caddy %s --help does not explain %s", cmd, f)
			}
		}
	}
}
