// Package keyfile reads the files the gateway is configured with: RSA public
// and private keys in PEM form, and the paths that name them. It is shared by
// the validator, the minting code and the command line, so every entry point
// refuses the same things with the same messages. It knows nothing of Caddy.
package keyfile

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrUnsupportedScheme is returned by ResolvePath for a URI whose scheme is
// not file. Okera accepts s3:// and other remote locations for its key
// files; the gateway reads local files only, and says so at start-up rather
// than failing later.
var ErrUnsupportedScheme = errors.New("unsupported location scheme")

// ResolvePath turns a configured location into a filesystem path. A plain
// path is returned unchanged. A file:// URI loses its scheme: file:///etc/k.pem
// is /etc/k.pem, file://localhost/etc/k.pem is /etc/k.pem (RFC 8089), and
// file://keys/k.pem is the relative path keys/k.pem (a common misspelling that
// is unambiguous enough to accept). Percent-escapes in a file:// URI are
// decoded. Any other scheme (s3://, gs://, http://, ...) is an error wrapping
// ErrUnsupportedScheme.
func ResolvePath(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty path")
	}
	scheme, rest, ok := splitScheme(p)
	if !ok {
		return p, nil
	}
	if !strings.EqualFold(scheme, "file") {
		return "", fmt.Errorf("%w %q in %q: only local paths and file:// URIs are supported; copy the file to the gateway's host and name it by its path",
			ErrUnsupportedScheme, strings.ToLower(scheme)+"://", p)
	}
	// file://localhost/x names the local /x; any other authority is read as
	// the first element of a relative path.
	if after, found := strings.CutPrefix(rest, "localhost/"); found {
		rest = "/" + after
	}
	path, err := url.PathUnescape(rest)
	if err != nil {
		return "", fmt.Errorf("file URI %q: %w", p, err)
	}
	if path == "" {
		return "", fmt.Errorf("file URI %q names no file", p)
	}
	if strings.ContainsRune(path, 0) {
		return "", fmt.Errorf("file URI %q holds a NUL byte", p)
	}
	return path, nil
}

// splitScheme recognises "<scheme>://<rest>" where scheme follows RFC 3986
// (a letter, then letters, digits, '+', '-', '.'). Anything else is a plain
// path, so a file whose name merely contains a colon still works.
func splitScheme(p string) (scheme, rest string, ok bool) {
	i := strings.Index(p, "://")
	if i <= 0 {
		return "", "", false
	}
	scheme = p[:i]
	for j := 0; j < len(scheme); j++ {
		c := scheme[j]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case j > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return "", "", false
		}
	}
	return scheme, p[i+3:], true
}
