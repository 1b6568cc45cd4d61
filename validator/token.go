package validator

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/okeragate/caddy-okera-auth/internal/strictjson"
)

// Token is a JWS in compact serialization that passed ParseCompact. Nothing in
// it is verified: the chain acts on Payload only after a validator vouched for
// the exact bytes it was decoded from.
type Token struct {
	// Alg is the protected header's alg, as written (any non-empty string;
	// key validators accept only RS256 and RS512).
	Alg string
	// Kid is the header's kid, or "" when absent.
	Kid string
	// Header is the decoded protected header. jwk, jku, x5u, x5c and x5t are
	// present here if the token carries them, and used for nothing.
	Header map[string]any
	// Payload is the decoded claim set; numbers are json.Number.
	Payload map[string]any
}

// b64url maps the RFC 7515 base64url alphabet to its 6-bit values; every
// other byte is 0xFF.
var b64url = func() (t [256]byte) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range t {
		t[i] = 0xFF
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// ParseCompact applies the strict syntax rules of README "Validation" and
// decodes the header and payload. It exists because jwx's parsers are lenient
// (they accept the JSON serializations, and decode some non-canonical input);
// the chain runs it before any validator sees the token, so the bytes the
// remote endpoint or jwx verifies are the bytes decoded here. A token is:
//
//   - exactly three '.'-separated segments, none empty (an unsigned token has
//     no place here);
//   - each segment in the base64url alphabet of RFC 7515 without padding or
//     whitespace, and canonical: decoding and re-encoding gives the same text
//     (unused trailing bits are zero), so one token has one spelling and one
//     cache key;
//   - header and payload: valid UTF-8, one JSON object each, no duplicate
//     member names at any depth, nothing but whitespace after the object;
//   - header: alg a non-empty string; kid a string if present; no crit (we
//     understand no extension, and RFC 7515 says to refuse what we do not
//     understand); no b64 (unencoded payloads are a different signing input);
//     no enc (a JWE header); cty, if present, a string other than "JWT" in any
//     case (nested tokens are refused).
//
// The alg value is not judged here: key validators verify only RS256 and
// RS512 (anything else is "bad_signature"), while the remote endpoint, which
// validates its tokens its own way, may accept others.
//
// Every error is an *Error with Reason "malformed" and never quotes the token.
func ParseCompact(token string) (*Token, error) {
	h, rest, ok := strings.Cut(token, ".")
	if !ok {
		return nil, malformed("not a compact JWS: no '.' separators (the JSON serializations are refused)")
	}
	p, s, ok := strings.Cut(rest, ".")
	if !ok {
		return nil, malformed("not a compact JWS: 2 segments, want 3")
	}
	if n := strings.Count(s, "."); n > 0 {
		return nil, malformed(fmt.Sprintf("not a compact JWS: %d segments, want 3 (a JWE has 5)", n+3))
	}
	if err := checkSegment("header", h); err != nil {
		return nil, err
	}
	if err := checkSegment("payload", p); err != nil {
		return nil, err
	}
	if err := checkSegment("signature", s); err != nil {
		return nil, err
	}

	// One allocation holds both decoded segments.
	buf := make([]byte, base64.RawURLEncoding.DecodedLen(len(h))+base64.RawURLEncoding.DecodedLen(len(p)))
	hn, err := decodeSegment(buf, h)
	if err != nil {
		return nil, malformed("header segment is not base64url")
	}
	pn, err := decodeSegment(buf[hn:], p)
	if err != nil {
		return nil, malformed("payload segment is not base64url")
	}

	header, err := strictjson.DecodeObject(buf[:hn])
	if err != nil {
		return nil, malformed("header: " + err.Error())
	}
	tok := &Token{Header: header}
	if err := tok.checkHeader(); err != nil {
		return nil, err
	}
	payload, err := strictjson.DecodeObject(buf[hn : hn+pn])
	if err != nil {
		return nil, malformed("payload: " + err.Error())
	}
	tok.Payload = payload
	return tok, nil
}

func (t *Token) checkHeader() error {
	alg, ok := t.Header["alg"].(string)
	if !ok || alg == "" {
		if _, present := t.Header["alg"]; !present {
			return malformed("header: no alg")
		}
		return malformed("header: alg is " + strictjson.Kind(t.Header["alg"]) + ", want a non-empty string")
	}
	t.Alg = alg
	if v, present := t.Header["kid"]; present {
		kid, ok := v.(string)
		if !ok {
			return malformed("header: kid is " + strictjson.Kind(v) + ", want a string")
		}
		t.Kid = kid
	}
	if _, present := t.Header["crit"]; present {
		return malformed("header: crit is present; no JWS extension is supported")
	}
	if _, present := t.Header["b64"]; present {
		return malformed("header: b64 is present; unencoded payloads are refused")
	}
	if _, present := t.Header["enc"]; present {
		return malformed("header: enc is present; encrypted tokens (JWE) are refused")
	}
	if v, present := t.Header["cty"]; present {
		cty, ok := v.(string)
		if !ok {
			return malformed("header: cty is " + strictjson.Kind(v) + ", want a string")
		}
		if strings.EqualFold(cty, "JWT") {
			return malformed("header: cty is JWT; nested tokens are refused")
		}
	}
	return nil
}

// checkSegment enforces the alphabet and canonical form of one segment
// without decoding it.
func checkSegment(name, seg string) error {
	if seg == "" {
		return malformed(name + " segment is empty")
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if b64url[c] != 0xFF {
			continue
		}
		switch c {
		case '=':
			return malformed(name + " segment has base64 padding")
		case ' ', '\t', '\r', '\n', '\v', '\f':
			return malformed(name + " segment contains whitespace")
		case '+', '/':
			return malformed(name + " segment uses the standard base64 alphabet, not base64url")
		}
		return malformed(fmt.Sprintf("%s segment has a byte outside the base64url alphabet at offset %d", name, i))
	}
	// The bits of the last character past the final byte must be zero;
	// otherwise several spellings decode to the same bytes.
	last := b64url[seg[len(seg)-1]]
	switch len(seg) % 4 {
	case 1:
		return malformed(name + " segment has an impossible base64url length")
	case 2:
		if last&0x0F != 0 {
			return malformed(name + " segment is not canonical base64url (non-zero trailing bits)")
		}
	case 3:
		if last&0x03 != 0 {
			return malformed(name + " segment is not canonical base64url (non-zero trailing bits)")
		}
	}
	return nil
}

// strictB64 is the RFC 7515 alphabet without padding, refusing non-zero
// trailing bits (checkSegment has said why a segment fails; this decodes).
var strictB64 = base64.RawURLEncoding.Strict()

// decodeSegment decodes a segment that passed checkSegment into dst and
// returns the length written.
func decodeSegment(dst []byte, seg string) (int, error) {
	return strictB64.Decode(dst, []byte(seg))
}

func malformed(msg string) *Error {
	return reject(ReasonMalformed, errors.New(msg))
}
