package safeurl

import (
	"errors"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	cases := []struct{ in, want string }{
		{"https://idp.example/keys", "https://idp.example/keys"},
		{"https://user:pass@idp.example/keys", "https://idp.example/keys"},
		{"https://user@idp.example:8443/k?x=1", "https://idp.example:8443/k?x=1"},
		{"http://u:p%zz@idp/keys", "http://idp/keys"}, // does not parse
		{"not a url", "not a url"},
	}
	for _, c := range cases {
		if got := String(c.in); got != c.want {
			t.Errorf("String(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestError(t *testing.T) {
	raw := "https://user:s3cret@idp.example/keys"
	for _, err := range []error{
		errors.New(`Get "` + raw + `": dial tcp: refused`),
		errors.New(`Get "https://user:***@idp.example/keys": dial tcp: refused`),
	} {
		got := Error(err, raw)
		if strings.Contains(got, "s3cret") || strings.Contains(got, "user") {
			t.Errorf("Error(%q) = %q: still holds userinfo", err, got)
		}
		if !strings.Contains(got, "https://idp.example/keys") {
			t.Errorf("Error(%q) = %q: lost the URL", err, got)
		}
	}
	if Error(nil, raw) != "" {
		t.Error("Error(nil) is not empty")
	}
}
