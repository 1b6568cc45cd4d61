package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// warnings returns the WARN lines Caddy logged as JSON.
func warnings(output string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(output))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var entry struct {
			Level string `json:"level"`
		}
		if json.Unmarshal(sc.Bytes(), &entry) == nil && entry.Level == "warn" {
			out = append(out, sc.Text())
		}
	}
	return out
}

// TestSystemTokenWarnings: a system token whose sub is not okera, or that
// expires within 24 hours, starts the gateway with a warning; with
// accept_system_token its sub is the default admin (README "Groups").
func TestSystemTokenWarnings(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	system := sign(t, rsaKey(t, keyA), jwa.RS512, claims{
		"sub": "svc-gateway",
		"iat": time.Now().Unix(),
		"exp": time.Now().Add(time.Hour).Unix(),
	})
	path := writeFile(t, t.TempDir(), "system.token", system)
	g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf(`
		public_key %s
		required_group analysts
		system_token %s
		accept_system_token
	`, k.A, path)})

	warns := strings.Join(warnings(g.Output()), "\n")
	if !strings.Contains(warns, "svc-gateway") {
		t.Errorf("no warning names the system token's sub svc-gateway; warnings:\n%s", warns)
	}
	if !strings.Contains(strings.ToLower(warns), "expire") {
		t.Errorf("no warning that the system token expires within 24 h; warnings:\n%s", warns)
	}
	if strings.Contains(g.Output(), system) {
		t.Errorf("the log holds the system token")
	}

	t.Run("the system token's sub is the default admin", func(t *testing.T) {
		rec := g.accept(t, bearer(sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("svc-gateway"))))
		assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "svc-gateway", "")
		if got := rec.Header.Get("Authorization"); got != "Bearer "+system {
			t.Errorf("upstream Authorization = %q, want the system token", got)
		}
	})
	t.Run("okera is not an admin here", func(t *testing.T) {
		assertForbidden(t, g.reject(t, bearer(sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("okera")))))
	})
}
