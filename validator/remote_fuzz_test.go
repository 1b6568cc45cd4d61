package validator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// fuzzAnswer is a RoundTripper that answers every call with one canned
// response, so the remote validator's answer handling runs without a
// network.
type fuzzAnswer struct {
	status int
	body   []byte
}

func (a fuzzAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: a.status,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(bytes.NewReader(a.body)),
		Request:    r,
	}, nil
}

// FuzzRemoteAnswer feeds the remote endpoint's answer handling (README
// "Validation") arbitrary status codes and bodies: it never panics, it
// validates only a 2xx JSON object without duplicate member names whose sub
// passes the Subject rules (so an answer naming two subs, or a sub carrying a
// header injection, never names a user), the user is that sub, a 3xx or 5xx is
// unavailable and a 4xx a rejection, and no error quotes the token.
//
//	go test ./validator -run '^$' -fuzz '^FuzzRemoteAnswer$' -fuzztime 60s
func FuzzRemoteAnswer(f *testing.F) {
	for _, s := range []struct {
		status int
		body   string
	}{
		{200, `{"sub":"alice","groups":["a"]}`},
		{200, `{"sub":"alice","sub":"root"}`},
		{200, `{"sub":"alice","\u0073ub":"root"}`},
		{200, `{"sub":"alice\r\nX-Okera-User: root"}`},
		{200, `{"sub":"alice\u0000"}`},
		{200, `{"sub":42}`},
		{200, `{"sub":["alice"]}`},
		{200, `{"sub":{"name":"alice"}}`},
		{200, `{"sub":" "}`},
		{200, `{"sub":"alice "}`},
		{200, `["alice"]`},
		{200, `"alice"`},
		{200, `{"sub":"alice"} {"sub":"root"}`},
		{200, "{\"sub\":\"al\xffice\"}"},
		{200, "\ufeff{\"sub\":\"alice\"}"},
		{200, `<html>bad gateway</html>`},
		{200, ``},
		{204, ``},
		{200, strings.Repeat("[", 100) + strings.Repeat("]", 100)},
		{200, `{"a":` + strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat("}", 71)},
		{302, `{"sub":"alice"}`},
		{401, `{"sub":"alice"}`},
		{500, `{"sub":"alice"}`},
		{101, `{"sub":"alice"}`},
	} {
		f.Add(uint16(s.status), []byte(s.body), false)
		f.Add(uint16(s.status), []byte(s.body), true)
	}
	token := compact(`{"alg":"RS256"}`, `{"sub":"token-user","groups":["token-group"],"exp":1900000000}`)
	tok, err := ParseCompact(token)
	if err != nil {
		f.Fatal(err)
	}
	tc, cerr := readTimeClaims(tok.Payload)
	if cerr != nil {
		f.Fatal(cerr)
	}
	sum := sha256.Sum256([]byte(token))

	f.Fuzz(func(t *testing.T, status uint16, body []byte, trust bool) {
		code := 100 + int(status)%900
		r, err := newRemote(RemoteValidator{
			URL:              "http://remote.invalid/validate",
			TrustTokenClaims: trust,
			Client:           &http.Client{Transport: fuzzAnswer{status: code, body: body}},
		}, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.close()
		res := r.resolve(context.Background(), sum, token, tok, tc, testNow)
		if res.err != nil {
			if res.id != nil {
				t.Fatal("both an identity and an error")
			}
			if strings.Contains(res.err.Error(), token) {
				t.Fatalf("the error quotes the token: %v", res.err)
			}
			switch {
			case code >= 400 && code < 500:
				if res.err.Unavailable || res.err.Reason != ReasonRemoteRejected {
					t.Fatalf("%d answered: %v, want a rejection", code, res.err)
				}
			case code < 200 || code >= 300:
				if !res.err.Unavailable {
					t.Fatalf("%d answered: %v, want unavailable", code, res.err)
				}
			}
			return
		}
		id := res.id
		if code < 200 || code >= 300 {
			t.Fatalf("validated by a %d answer", code)
		}
		answer, err := oracleObject(body)
		if err != nil {
			t.Fatalf("validated by a body the reference parser refuses (%v): %q", err, body)
		}
		sub, ok := answer["sub"].(string)
		if !ok || sub != id.User {
			t.Fatalf("user %q, the answer's sub is %#v", id.User, answer["sub"])
		}
		if strings.TrimSpace(sub) == "" || !utf8.ValidString(sub) || strings.IndexFunc(sub, unicode.IsControl) >= 0 ||
			strings.TrimFunc(sub, unicode.IsSpace) != sub {
			t.Fatalf("validated the unusable sub %q", sub)
		}
		if id.Claims["sub"] != sub {
			t.Fatalf("claims name %#v, the user is %q", id.Claims["sub"], sub)
		}
		if !trust {
			if _, ok := answer["groups"]; !ok {
				if _, leaked := id.Claims["groups"]; leaked {
					t.Fatal("the token's unverified groups reached the claims without trust_token_claims")
				}
			}
		}
		if id.By != ByRemote {
			t.Fatalf("By = %q", id.By)
		}
	})
}
