package caddymodule

import (
	"io"
	"net/http"
	"reflect"
	"testing"
)

// README "Security notes": every client-sent spelling of an identity header is
// removed before anything else; CGI/PHP/WSGI fold "_" and "." into "-", so
// those spellings are the same header to the back end.
func TestStripIdentity(t *testing.T) {
	ids := newIdentityNames("X-Okera-User", "X-Okera-Groups")
	tests := []struct {
		name        string
		header      http.Header
		trailer     http.Header
		wantHeader  http.Header
		wantTrailer http.Header
	}{
		{
			name:       "canonical and lower case",
			header:     http.Header{"X-Okera-User": {"admin"}, "x-okera-user": {"root"}, "Accept": {"*/*"}},
			wantHeader: http.Header{"Accept": {"*/*"}},
		},
		{
			name:       "underscore and dot spellings",
			header:     http.Header{"X_Okera_User": {"a"}, "X.Okera.User": {"b"}, "x_okera.groups": {"c"}, "X-Okera_Groups": {"d"}},
			wantHeader: http.Header{},
		},
		{
			name:       "repeated values",
			header:     http.Header{"X-Okera-Groups": {"admin", "root"}},
			wantHeader: http.Header{},
		},
		{
			name:       "similar names survive",
			header:     http.Header{"X-Okera-Users": {"a"}, "X-Okera": {"b"}, "Okera-User": {"c"}},
			wantHeader: http.Header{"X-Okera-Users": {"a"}, "X-Okera": {"b"}, "Okera-User": {"c"}},
		},
		{
			name:       "connection tokens",
			header:     http.Header{"Connection": {"keep-alive, X-Okera-User", "x_okera_groups"}},
			wantHeader: http.Header{"Connection": {"keep-alive"}},
		},
		{
			name:       "connection holding only identity names is removed",
			header:     http.Header{"Connection": {"X-Okera-User,X-Okera-Groups"}},
			wantHeader: http.Header{},
		},
		{
			// Only the gateway decides the upstream's Authorization: a
			// client naming it in Connection would make the proxy drop
			// the system token.
			name:       "authorization in connection tokens",
			header:     http.Header{"Authorization": {"Bearer t"}, "Connection": {"keep-alive, Authorization", "AUTHORIZATION"}},
			wantHeader: http.Header{"Authorization": {"Bearer t"}, "Connection": {"keep-alive"}},
		},
		{
			name:        "authorization trailer",
			header:      http.Header{},
			trailer:     http.Header{"Authorization": {"Bearer smuggled"}, "X-Checksum": {"1"}},
			wantHeader:  http.Header{},
			wantTrailer: http.Header{"X-Checksum": {"1"}},
		},
		{
			name:       "connection untouched when clean",
			header:     http.Header{"Connection": {"keep-alive,  Upgrade"}},
			wantHeader: http.Header{"Connection": {"keep-alive,  Upgrade"}},
		},
		{
			name:        "trailers",
			header:      http.Header{},
			trailer:     http.Header{"X-Okera-User": {"admin"}, "X-Checksum": {"1"}},
			wantHeader:  http.Header{},
			wantTrailer: http.Header{"X-Checksum": {"1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{Header: tt.header, Trailer: tt.trailer}
			ids.stripIdentity(r)
			if !reflect.DeepEqual(r.Header, tt.wantHeader) {
				t.Errorf("header = %v, want %v", r.Header, tt.wantHeader)
			}
			if tt.wantTrailer != nil && !reflect.DeepEqual(r.Trailer, tt.wantTrailer) {
				t.Errorf("trailer = %v, want %v", r.Trailer, tt.wantTrailer)
			}
		})
	}
}

func TestStripIdentityCustomNames(t *testing.T) {
	ids := newIdentityNames("X-Remote-User", "X_Remote.Groups")
	r := &http.Request{Header: http.Header{"X-Remote-User": {"a"}, "X-Remote-Groups": {"b"}, "X-Okera-User": {"c"}}}
	ids.stripIdentity(r)
	want := http.Header{"X-Okera-User": {"c"}}
	if !reflect.DeepEqual(r.Header, want) {
		t.Errorf("header = %v, want %v", r.Header, want)
	}
}

func TestSameHeaderNameDoesNotAllocate(t *testing.T) {
	ids := newIdentityNames("X-Okera-User", "X-Okera-Groups")
	r := &http.Request{Header: http.Header{"Accept": {"*/*"}, "User-Agent": {"x"}, "Connection": {"keep-alive"}}}
	allocs := testing.AllocsPerRun(100, func() { ids.stripIdentity(r) })
	if allocs != 0 {
		t.Errorf("stripIdentity on a clean request allocates %v times, want 0", allocs)
	}
}

// fillingBody mimics net/http: the trailer values appear when the body hits EOF.
type fillingBody struct {
	trailer http.Header
	done    bool
}

func (b *fillingBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	b.done = true
	b.trailer["X-Okera-User"] = []string{"mallory"}
	b.trailer["X-Checksum"] = []string{"1"}
	return copy(p, "x"), io.EOF
}
func (b *fillingBody) Close() error { return nil }

// A trailer announced by the client gets its value only once the body is
// read, after the handler ran; it must be stripped then too.
func TestStripIdentityLateTrailers(t *testing.T) {
	ids := newIdentityNames("X-Okera-User", "X-Okera-Groups")
	trailer := http.Header{"X-Okera-User": nil, "X-Checksum": nil}
	r := &http.Request{Header: http.Header{}, Trailer: trailer, Body: &fillingBody{trailer: trailer}}
	ids.stripIdentity(r)
	if _, err := io.ReadAll(r.Body); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Trailer["X-Okera-User"]; ok {
		t.Errorf("trailer after EOF = %v, want no X-Okera-User", r.Trailer)
	}
	if r.Trailer.Get("X-Checksum") != "1" {
		t.Errorf("other trailers lost: %v", r.Trailer)
	}
}
