// Package safeurl renders URLs for logs and error messages without the
// credentials an operator may have written into them
// (https://user:pass@idp/...): a URL is logged by where it points, never by
// the secret it carries (README "Logs").
package safeurl

import (
	"net/url"
	"strings"
)

// String returns raw without its userinfo. A value that does not parse as
// a URL is returned only up to the last '@' before its path is cut away,
// so even a malformed URL cannot leak a password into a log line.
func String(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return stripUnparsed(raw)
	}
	if u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// Error returns err's message with every occurrence of raw replaced by its
// redacted form: errors from net/http and the JOSE library quote the URL
// they were asked to fetch.
func Error(err error, raw string) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	safe := String(raw)
	if safe == raw {
		return msg
	}
	msg = strings.ReplaceAll(msg, raw, safe)
	// net/http's errors quote the URL with the password replaced by "***".
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		if pw, has := u.User.Password(); has {
			starred := strings.Replace(raw, ":"+pw+"@", ":***@", 1)
			msg = strings.ReplaceAll(msg, starred, safe)
		}
	}
	return msg
}

// stripUnparsed drops everything between "scheme://" and the last '@' of
// the authority, for strings url.Parse refused.
func stripUnparsed(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	authority, path := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		authority = authority[i+1:]
	}
	return scheme + "://" + authority + path
}
