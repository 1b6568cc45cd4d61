package caddymodule

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

// FuzzExtractToken pins down the extraction rule of README "Validation" against
// arbitrary Authorization values, given directly and as a raw HTTP/1.1 request
// read by net/http (which is how they reach the handler): a token is returned
// only for exactly one Authorization header of the form "Bearer <token>",
// scheme in any case, token non-empty, at most max_token_size, and exactly the
// header's text after the scheme and its spaces.
//
//	go test ./caddymodule -run '^$' -fuzz '^FuzzExtractToken$' -fuzztime 60s
func FuzzExtractToken(f *testing.F) {
	for _, s := range []string{
		"Bearer a.b.c",
		"bearer a.b.c",
		"BEARER a.b.c",
		"Bearer  a.b.c",
		"Bearer\ta.b.c",
		"Bearer",
		"Bearer ",
		"Bearer Bearer a.b.c",
		"Basic YWxpY2U6c2VjcmV0",
		"Bearer a.b.c\nBearer d.e.f",
		"Bearer a.b.c\n",
		"Bearer a.b.c ",
		" Bearer a.b.c",
		"Bearer a.b.c\r\nX-Okera-User: root",
		"Bearer " + strings.Repeat("x", 40),
		"Bearerx a.b.c",
		"",
	} {
		f.Add(s, uint16(32))
	}
	f.Fuzz(func(t *testing.T, raw string, maxSize uint16) {
		h := &Handler{MaxTokenSize: 1 + int(maxSize)%64}

		// Directly: each line is one Authorization value.
		r := &http.Request{Header: http.Header{}}
		if raw != "" {
			r.Header["Authorization"] = strings.Split(raw, "\n")
		}
		checkExtraction(t, h, r)

		// Through net/http's request parser, as the server reads it.
		var b strings.Builder
		b.WriteString("GET / HTTP/1.1\r\nHost: gateway\r\n")
		for _, v := range strings.Split(raw, "\n") {
			b.WriteString("Authorization: " + v + "\r\n")
		}
		b.WriteString("\r\n")
		if req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(b.String()))); err == nil {
			checkExtraction(t, h, req)
		}
	})
}

func checkExtraction(t *testing.T, h *Handler, r *http.Request) {
	t.Helper()
	// Every value under any spelling of the name: the handler must never
	// pick one of several, even if a parser left a non-canonical key.
	var values []string
	for k, vv := range r.Header {
		if strings.EqualFold(k, "Authorization") {
			values = append(values, vv...)
		}
	}
	token, reason := h.extractToken(r)
	if (token == "") == (reason == "") {
		t.Fatalf("extractToken = %q, %q: want exactly one of token and reason", token, reason)
	}
	if reason != "" {
		if len(values) == 0 && reason != reasonMissing {
			t.Fatalf("no Authorization header: reason %q, want %q", reason, reasonMissing)
		}
		return
	}
	if len(values) != 1 {
		t.Fatalf("token taken from one of %d Authorization values %q", len(values), values)
	}
	v := values[0]
	if len(v) < len("Bearer ") || !strings.EqualFold(v[:len("Bearer ")], "Bearer ") {
		t.Fatalf("token taken from %q, which is not a Bearer credential", v)
	}
	if want := strings.TrimLeft(v[len("Bearer "):], " "); token != want {
		t.Fatalf("token %q from %q, want %q", token, v, want)
	}
	if len(token) > h.MaxTokenSize {
		t.Fatalf("token of %d bytes accepted with max_token_size %d", len(token), h.MaxTokenSize)
	}
	if token[0] == ' ' {
		t.Fatalf("token %q starts with a space", token)
	}
}
