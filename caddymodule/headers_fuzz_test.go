package caddymodule

import (
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// foldName is the name a CGI, PHP or WSGI back end sees: ASCII letters
// lower-cased, '_' and '.' read as '-'. Written out here, byte by byte,
// rather than shared with the code under test.
func foldName(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			b[i] = c + 32
		case c == '_' || c == '.':
			b[i] = '-'
		}
	}
	return string(b)
}

// FuzzStripIdentity pins down the first rule of README "Security notes" against
// arbitrary header names, trailers and Connection values: after stripIdentity
// (and after the body is read to its end, when net/http fills in trailers) no
// header or trailer name, and no Connection token as Caddy's proxy splits them,
// folds to an identity header name; every other header, trailer and Connection
// token is left alone. sameHeaderName agrees with the fold on any bytes.
//
//	go test ./caddymodule -run '^$' -fuzz '^FuzzStripIdentity$' -fuzztime 60s
func FuzzStripIdentity(f *testing.F) {
	for _, s := range []struct{ user, groups, names, conn string }{
		{"X-Okera-User", "X-Okera-Groups", "X-Okera-User\nx_okera_user\nX.OKERA.GROUPS\nAccept\nX-Okera-Users", "keep-alive, X-Okera-User"},
		{"X-Okera-User", "X-Okera-Groups", "x-okera_user\nX_Okera.Groups\nX-Okera\nOkera-User", "x_okera_groups,\tx.okera.user , Upgrade"},
		{"X-Remote-User", "X-Remote-Groups", "X-Remote-User\nX-Okera-User\nx.remote.groups", "X-Remote-User,,X-Remote-Groups"},
		{"X-Okera-User", "X-Okera-Groups", "X-Okera-User", " X-Okera-User ,X-Okera-Groups\nclose"},
		{"user", "groups", "USER\nGroups\nuser-agent", "User"},
	} {
		f.Add(s.user, s.groups, s.names, s.conn, true)
	}
	f.Fuzz(func(t *testing.T, user, groups, names, conn string, trailers bool) {
		if !httpguts.ValidHeaderFieldName(user) || !httpguts.ValidHeaderFieldName(groups) {
			return // refused as user_header/groups_header by Caddy's header handling anyway
		}
		ids := newIdentityNames(user, groups)
		identity := []string{foldName(user), foldName(groups)}
		isIdentity := func(name string) bool { return slices.Contains(identity, foldName(name)) }

		for _, n := range strings.Split(names, "\n") {
			if got := ids.matches(n); got != isIdentity(n) {
				t.Fatalf("matches(%q) = %v with identity names %q", n, got, identity)
			}
			for _, id := range identity {
				if got, want := sameHeaderName(n, id), foldName(n) == id; got != want {
					t.Fatalf("sameHeaderName(%q, %q) = %v, want %v", n, id, got, want)
				}
			}
		}

		r := &http.Request{Header: http.Header{}, Trailer: http.Header{}}
		want, sent := http.Header{}, http.Header{}
		for i, n := range strings.Split(names, "\n") {
			if !httpguts.ValidHeaderFieldName(n) || strings.EqualFold(n, "Connection") {
				continue // net/http refuses such names; Connection is checked below
			}
			// As sent and in canonical form, as net/http may store either.
			for _, k := range []string{n, http.CanonicalHeaderKey(n)} {
				v := "v" + string(rune('a'+i%26))
				r.Header[k] = append(r.Header[k], v)
				if trailers {
					// Declared now, filled at the body's end, as net/http does.
					r.Trailer[k] = nil
					sent[k] = append(sent[k], v)
				}
				if !isIdentity(k) {
					want[k] = append(want[k], v)
				}
			}
		}
		var wantTokens []string
		if conn != "" {
			values := strings.Split(conn, "\n")
			for _, v := range values {
				if !httpguts.ValidHeaderFieldValue(v) {
					return // net/http refuses the request
				}
			}
			r.Header["Connection"] = values
			// The handler may also drop a token that is an identity name
			// once trimmed of Unicode spaces: stricter than the proxy, and
			// harmless.
			for _, tok := range connectionTokens(values) {
				if !isIdentity(strings.TrimSpace(tok)) {
					wantTokens = append(wantTokens, strings.TrimSpace(tok))
				}
			}
		}
		wantTrailer := want.Clone()
		if !trailers {
			wantTrailer = http.Header{}
		}
		r.Body = &trailerFiller{r: strings.NewReader("body"), dst: r.Trailer, src: sent}

		ids.stripIdentity(r)
		if _, err := io.ReadAll(r.Body); err != nil {
			t.Fatal(err)
		}

		for _, h := range []struct {
			what string
			got  http.Header
			want http.Header
		}{{"header", r.Header, want}, {"trailer", r.Trailer, wantTrailer}} {
			for k, vv := range h.got {
				if isIdentity(k) {
					t.Fatalf("%s %q = %q survived the strip", h.what, k, vv)
				}
				if k == "Connection" && h.what == "header" {
					continue
				}
				if !slices.Equal(vv, h.want[k]) {
					t.Fatalf("%s %q = %q, want %q", h.what, k, vv, h.want[k])
				}
			}
			for k := range h.want {
				if _, ok := h.got[k]; !ok {
					t.Fatalf("%s %q was removed, but it is not an identity header", h.what, k)
				}
			}
		}
		var gotTokens []string
		for _, tok := range connectionTokens(r.Header["Connection"]) {
			if isIdentity(tok) {
				t.Fatalf("Connection token %q survived the strip (Connection = %q)", tok, r.Header["Connection"])
			}
			gotTokens = append(gotTokens, strings.TrimSpace(tok))
		}
		if !slices.Equal(gotTokens, wantTokens) {
			t.Fatalf("Connection tokens %q, want %q", gotTokens, wantTokens)
		}
		if v, ok := r.Header["Connection"]; ok && len(v) == 0 {
			t.Fatal("an empty Connection header was left behind")
		}
	})
}

// connectionTokens splits Connection values the way Caddy's reverse proxy
// does before deleting the named headers: on commas, trimmed of HTTP
// whitespace, empty tokens skipped.
func connectionTokens(values []string) []string {
	var out []string
	for _, v := range values {
		for _, tok := range strings.Split(v, ",") {
			if tok = textproto.TrimString(tok); tok != "" {
				out = append(out, tok)
			}
		}
	}
	return out
}

// trailerFiller is a request body that sets the trailers' values when it
// reaches its end, which is when net/http does.
type trailerFiller struct {
	r        io.Reader
	dst, src http.Header
}

func (b *trailerFiller) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		for k, v := range b.src {
			b.dst[k] = v
		}
	}
	return n, err
}

func (b *trailerFiller) Close() error { return nil }
