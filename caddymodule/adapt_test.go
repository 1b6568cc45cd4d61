package caddymodule

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

var updateAdapt = flag.Bool("update", false, "rewrite the adapt fixtures' expected JSON")

// TestAdaptFixtures pins what `caddy adapt` makes of each directive: every
// testdata/adapt/*.caddyfile is adapted and compared with the .json beside
// it. Run `go test ./caddymodule -run TestAdaptFixtures -update` after an
// intended change and review the diff.
func TestAdaptFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/adapt/*.caddyfile")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".caddyfile")
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			out, warnings, err := adapter.Adapt(in, map[string]any{"filename": file})
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			for _, w := range warnings {
				t.Errorf("warning: %s:%d: %s", w.File, w.Line, w.Message)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, out, "", "\t"); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			golden := strings.TrimSuffix(file, ".caddyfile") + ".json"
			if *updateAdapt {
				if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("adapted JSON differs from %s:\n%s", golden, pretty.String())
			}
		})
	}
}

// A wrong line fails adaptation with the file, the line and the directive.
func TestAdaptErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		name, caddyfile, want string
	}{
		{"unknown subdirective", "example.com {\n\tokera_auth {\n\t\tpublic_key a.pub\n\t\tpublickey b.pub\n\t}\n}\n", "Caddyfile:4"},
		{"ldap block", "example.com {\n\tokera_auth {\n\t\tpublic_key a.pub\n\t\tldap {\n\t\t\turl ldap://127.0.0.1\n\t\t\tbind_dn cn=x\n\t\t\tbind_password p\n\t\t}\n\t}\n}\n", "base_dn is required"},
		{"bad duration", "example.com {\n\tokera_auth {\n\t\tremote_endpoint http://127.0.0.1/v {\n\t\t\ttimeout forever\n\t\t}\n\t}\n}\n", "Caddyfile:4"},
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := adapter.Adapt([]byte(tt.caddyfile), map[string]any{"filename": "Caddyfile"})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
