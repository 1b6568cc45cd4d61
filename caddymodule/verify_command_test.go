package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/okeragate/caddy-okera-auth/mint"
)

func runVerify(t *testing.T, opts verifyOptions, stdin string) (code int, stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	code, err = verify(context.Background(), opts, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String(), err
}

func TestVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	a, b := ownKey(t, 0), ownKey(t, 1)
	pubA := writeTestFile(t, dir, "a.pub", spkiPEM(t, a))
	pubB := writeTestFile(t, dir, "b.pub", spkiPEM(t, b))
	sA := newSigner(t, a, "RS256")
	tok := signFor(t, sA, "alice", "Analysts", "data")

	// Valid: JSON with user, groups (normalised like okera_auth), validator
	// and claims; exit 0. The key's algorithm comes after the path.
	for _, c := range []struct {
		name  string
		opts  verifyOptions
		stdin string
	}{
		{"argument", verifyOptions{PublicKeys: []string{pubB, pubA + ":RSA256"}, Token: tok}, ""},
		{"stdin with -", verifyOptions{PublicKeys: []string{"file://" + pubA + ":rs256"}, Token: "-"}, "Bearer " + tok + "\n"},
		{"stdin without argument", verifyOptions{PublicKeys: []string{pubA + ":RS256"}}, tok},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr, err := runVerify(t, c.opts, c.stdin)
			if err != nil || code != 0 {
				t.Fatalf("exit %d, err %v, stderr %s", code, err, stderr)
			}
			var res struct {
				User      string         `json:"user"`
				Groups    []string       `json:"groups"`
				Validator string         `json:"validator"`
				Claims    map[string]any `json:"claims"`
			}
			if err := json.Unmarshal([]byte(stdout), &res); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
			}
			if res.User != "alice" || strings.Join(res.Groups, ",") != "analysts,data" || res.Validator != "public_key" {
				t.Errorf("result %+v", res)
			}
			if res.Claims["iss"] != mint.Issuer || res.Claims["sub"] != "alice" {
				t.Errorf("claims %v", res.Claims)
			}
		})
	}

	// Invalid: the reason on stderr, exit 2. The default algorithm is
	// RSA512, so an RS256 token does not verify with a plain path.
	expired, _, _ := sA.Sign(mint.Claims{Subject: "alice", TTL: time.Minute}, time.Now().Add(-time.Hour))
	for _, c := range []struct {
		name, token, reason string
		keys                []string
	}{
		{"wrong key", tok, "bad_signature", []string{pubB + ":RS256"}},
		{"wrong algorithm", tok, "no_matching_key", []string{pubA}},
		{"expired", expired, "expired", []string{pubA + ":RS256"}},
		{"garbage", "not.a.token", "malformed", []string{pubA}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr, err := runVerify(t, verifyOptions{PublicKeys: c.keys, Token: c.token}, "")
			if err != nil || code != exitTokenInvalid {
				t.Fatalf("exit %d, err %v; want %d", code, err, exitTokenInvalid)
			}
			if stdout != "" || !strings.Contains(stderr, c.reason) {
				t.Errorf("stdout %q stderr %q, want the reason %q", stdout, stderr, c.reason)
			}
			if strings.Contains(stderr, c.token) && len(c.token) > 20 {
				t.Error("stderr repeats the token")
			}
		})
	}

	// Usage errors: exit 1 with an error.
	for _, opts := range []verifyOptions{
		{Token: tok},
		{PublicKeys: []string{dir + "/missing.pub"}, Token: tok},
		{PublicKeys: []string{pubA}, Token: "-"},
		{Remote: "ftp://x", Token: tok},
	} {
		if code, _, _, err := runVerify(t, opts, ""); err == nil || code != 1 {
			t.Errorf("%+v: exit %d err %v, want 1 and an error", opts, code, err)
		}
	}
}

// With --remote the endpoint is asked first; its rejection falls through
// to the keys (Okera's rule); an endpoint that is down with no key
// verifying is exit 3 (okera_auth would answer 503).
func TestVerifyCommandRemote(t *testing.T) {
	dir := t.TempDir()
	a := ownKey(t, 0)
	pubA := writeTestFile(t, dir, "a.pub", spkiPEM(t, a))
	tok := signFor(t, newSigner(t, a, "RS512"), "alice")
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if status == http.StatusOK {
			io.WriteString(w, `{"sub":"remote-alice","groups":["r"]}`)
		}
	}))
	defer srv.Close()

	code, stdout, _, err := runVerify(t, verifyOptions{Remote: srv.URL, Timeout: time.Second, Token: tok}, "")
	if err != nil || code != 0 || !strings.Contains(stdout, `"remote-alice"`) || !strings.Contains(stdout, `"validator": "remote"`) {
		t.Fatalf("remote valid: exit %d err %v stdout %s", code, err, stdout)
	}
	status = http.StatusUnauthorized
	code, stdout, _, _ = runVerify(t, verifyOptions{Remote: srv.URL, Timeout: time.Second, PublicKeys: []string{pubA}, Token: tok}, "")
	if code != 0 || !strings.Contains(stdout, `"validator": "public_key"`) {
		t.Fatalf("rejected by the remote, valid by key: exit %d stdout %s", code, stdout)
	}
	status = http.StatusServiceUnavailable
	code, _, stderr, _ := runVerify(t, verifyOptions{Remote: srv.URL, Timeout: time.Second, Token: tok}, "")
	if code != exitValidatorFailure || !strings.Contains(stderr, "unavailable") {
		t.Fatalf("remote down: exit %d stderr %s", code, stderr)
	}
}

func TestSplitKeySpec(t *testing.T) {
	for spec, want := range map[string][2]string{
		"/k.pub":                 {"/k.pub", "RS512"},
		"/k.pub:RS256":           {"/k.pub", "RS256"},
		"/k.pub:rsa512":          {"/k.pub", "RS512"},
		"file:///k.pub":          {"file:///k.pub", "RS512"},
		"file:///k.pub:RSA256":   {"file:///k.pub", "RS256"},
		"/dir:with:colons/k.pub": {"/dir:with:colons/k.pub", "RS512"},
		"/k.pub:":                {"/k.pub:", "RS512"},
	} {
		path, alg, err := splitKeySpec(spec)
		if err != nil || path != want[0] || alg != want[1] {
			t.Errorf("%q → %q %q %v, want %q", spec, path, alg, err, want)
		}
	}
}
