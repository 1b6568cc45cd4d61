package caddymodule

import (
	"io"
	"net/http"
	"strings"
)

// identityNames holds the identity headers a client must never set, in the
// lower-case, hyphenated form that sameHeaderName compares against.
type identityNames []string

func newIdentityNames(names ...string) identityNames {
	out := make(identityNames, 0, len(names))
	for _, n := range names {
		out = append(out, foldHeaderName(n))
	}
	return out
}

// foldHeaderName is a header name as CGI-style back ends see it: lower
// case, with '_' and '.' read as '-'.
func foldHeaderName(name string) string {
	return strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(name))
}

// hopForbidden reports whether a client may not name this header in
// Connection or send it as a trailer: the identity headers, and
// Authorization, which only the gateway decides (a `Connection:
// Authorization` would make the proxy drop the system token; a trailer
// would reach the upstream after the body, past the gateway's token).
func (ids identityNames) hopForbidden(name string) bool {
	return ids.matches(name) || sameHeaderName(name, "authorization")
}

// matches reports whether a header name is one of the identity headers in
// any letter case and in its "_" and "." spellings. CGI, PHP and WSGI back
// ends fold X_Okera_User and X.Okera.User into the same variable as
// X-Okera-User, so every spelling is an identity header.
func (ids identityNames) matches(name string) bool {
	for _, id := range ids {
		if sameHeaderName(name, id) {
			return true
		}
	}
	return false
}

// sameHeaderName compares a header name with a lower-case hyphenated name,
// folding case and treating '_' and '.' as '-', without allocating: it runs
// on every header of every request.
func sameHeaderName(name, folded string) bool {
	if len(name) != len(folded) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_' || c == '.':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != folded[i] {
			return false
		}
	}
	return true
}

// stripIdentity removes every client-sent spelling of the identity headers
// from the request's headers, the identity headers and Authorization from
// its trailers, and all their names from the Connection header (a
// hop-by-hop trick that would make a proxy drop the header the gateway
// sets, or keep a forged one).
func (ids identityNames) stripIdentity(r *http.Request) {
	for name := range r.Header {
		if ids.matches(name) {
			delete(r.Header, name)
		}
	}
	if len(r.Trailer) > 0 {
		ids.stripTrailer(r.Trailer)
		// net/http fills r.Trailer only when the body reaches its end, after
		// this handler has run, and the proxy forwards what it finds then.
		// Strip again at that moment; the body passes through untouched.
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &trailerStripper{ReadCloser: r.Body, trailer: r.Trailer, ids: ids}
		}
	}
	if conn, ok := r.Header["Connection"]; ok {
		r.Header["Connection"] = ids.filterConnection(conn)
		if len(r.Header["Connection"]) == 0 {
			delete(r.Header, "Connection")
		}
	}
}

func (ids identityNames) stripTrailer(t http.Header) {
	for name := range t {
		if ids.hopForbidden(name) {
			delete(t, name)
		}
	}
}

// trailerStripper removes identity trailers once the body has been read to
// its end, which is when net/http sets the trailers' values.
type trailerStripper struct {
	io.ReadCloser
	trailer http.Header
	ids     identityNames
}

func (t *trailerStripper) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err == io.EOF {
		t.ids.stripTrailer(t.trailer)
	}
	return n, err
}

// filterConnection drops identity header names from Connection tokens. The
// common case, nothing to drop, returns the input unchanged and allocates
// nothing.
func (ids identityNames) filterConnection(values []string) []string {
	dirty := false
	for _, v := range values {
		forEachToken(v, func(tok string) {
			if ids.hopForbidden(tok) {
				dirty = true
			}
		})
	}
	if !dirty {
		return values
	}
	var out []string
	for _, v := range values {
		var kept []string
		forEachToken(v, func(tok string) {
			if !ids.hopForbidden(tok) {
				kept = append(kept, tok)
			}
		})
		if len(kept) > 0 {
			out = append(out, strings.Join(kept, ", "))
		}
	}
	return out
}

// forEachToken calls fn with each non-empty, trimmed token of a
// comma-separated header value.
func forEachToken(v string, fn func(string)) {
	for v != "" {
		tok := v
		if i := strings.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			v = ""
		}
		if tok = strings.TrimSpace(tok); tok != "" {
			fn(tok)
		}
	}
}
