// Package strictjson decodes JSON the way a security boundary must: one
// value, valid UTF-8, no duplicate member names at any depth, bounded
// nesting, nothing after the value. The gateway reads token headers and
// payloads, remote validation answers and group endpoint answers with it,
// so that it and any other reader of the same bytes cannot disagree about
// what they say.
package strictjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds the nesting of header, payload and endpoint answers
// (the top-level object counts as one level). The parser recurses once per
// level; no real claim set nests past a handful of levels, so 64 costs
// nothing legitimate and bounds the stack for any input size.
const MaxDepth = 64

// DecodeObject decodes data as exactly one RFC 8259 JSON object,
// refusing what encoding/json silently tolerates: invalid UTF-8 (which it
// replaces with U+FFFD), duplicate member names at any depth (which it
// resolves by keeping the last one, while other parsers keep the first: two
// parties could then read different claims from the same verified bytes),
// and anything but whitespace after the object. Numbers are json.Number, so
// a huge exp is seen as such rather than rounded into range. Member names
// are compared after unescaping, so "sub" and "\u0073ub" are duplicates.
// Values decode as encoding/json decodes them into an any, with
// json.Number for numbers, except that a lone UTF-16 surrogate escape
// ("\ud800"), which encoding/json reads as U+FFFD and JavaScript keeps, is
// refused.
//
// It is a small hand-written parser rather than a walk over json.Decoder
// tokens because it runs on every new token: one pass, no reflection, one
// allocation per string.
func DecodeObject(data []byte) (map[string]any, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("not valid UTF-8")
	}
	p := jsonParser{s: data}
	p.skipSpace()
	if p.i >= len(p.s) {
		return nil, errors.New("not JSON: no value")
	}
	if c := p.s[p.i]; c != '{' {
		return nil, fmt.Errorf("not a JSON object (starts with %s)", kindOfByte(c))
	}
	p.i++
	obj, err := p.object(1)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return nil, errors.New("data after the JSON object")
	}
	return obj, nil
}

// Decode decodes data as exactly one JSON value of any type, with the
// rules of DecodeObject.
func Decode(data []byte) (any, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("not valid UTF-8")
	}
	p := jsonParser{s: data}
	p.skipSpace()
	if p.i >= len(p.s) {
		return nil, errors.New("not JSON: no value")
	}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

type jsonParser struct {
	s []byte
	i int
}

func (p *jsonParser) skipSpace() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// next returns the byte at the cursor after whitespace, or 0 at the end.
func (p *jsonParser) next() byte {
	p.skipSpace()
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *jsonParser) fail(what string) error {
	if p.i >= len(p.s) {
		return fmt.Errorf("invalid JSON: unexpected end, %s", what)
	}
	return fmt.Errorf("invalid JSON at offset %d: %s", p.i, what)
}

// object reads members up to and including the closing brace; the opening
// brace has been consumed.
func (p *jsonParser) object(depth int) (map[string]any, error) {
	obj := make(map[string]any, 8)
	if p.next() == '}' {
		p.i++
		return obj, nil
	}
	for {
		if p.next() != '"' {
			return nil, p.fail("expected a member name")
		}
		name, err := p.memberName()
		if err != nil {
			return nil, err
		}
		if _, dup := obj[name]; dup {
			return nil, fmt.Errorf("duplicate member name %s", Excerpt(name))
		}
		if p.next() != ':' {
			return nil, p.fail("expected ':' after a member name")
		}
		p.i++
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		obj[name] = v
		switch p.next() {
		case ',':
			p.i++
		case '}':
			p.i++
			return obj, nil
		default:
			return nil, p.fail("expected ',' or '}' after a member")
		}
	}
}

func (p *jsonParser) array(depth int) ([]any, error) {
	arr := make([]any, 0, 4)
	if p.next() == ']' {
		p.i++
		return arr, nil
	}
	for {
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		switch p.next() {
		case ',':
			p.i++
		case ']':
			p.i++
			return arr, nil
		default:
			return nil, p.fail("expected ',' or ']' after an element")
		}
	}
}

// value reads one value inside a container at depth.
func (p *jsonParser) value(depth int) (any, error) {
	switch c := p.next(); {
	case c == '{' || c == '[':
		if depth >= MaxDepth {
			return nil, fmt.Errorf("JSON nested deeper than %d levels", MaxDepth)
		}
		p.i++
		if c == '{' {
			return p.object(depth + 1)
		}
		return p.array(depth + 1)
	case c == '"':
		return p.str()
	case c == '-' || ('0' <= c && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, p.fail("expected a value")
}

func (p *jsonParser) literal(lit string) error {
	if len(p.s)-p.i < len(lit) || string(p.s[p.i:p.i+len(lit)]) != lit {
		return p.fail("invalid literal")
	}
	p.i += len(lit)
	return nil
}

// number reads an RFC 8259 number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *jsonParser) number() (json.Number, error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.s) && p.s[p.i] == '0':
		p.i++
	case p.digits() == 0:
		return "", p.fail("invalid number")
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if p.digits() == 0 {
			return "", p.fail("invalid number fraction")
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return "", p.fail("invalid number exponent")
		}
	}
	return json.Number(p.s[start:p.i]), nil
}

func (p *jsonParser) digits() int {
	n := 0
	for p.i < len(p.s) && '0' <= p.s[p.i] && p.s[p.i] <= '9' {
		p.i++
		n++
	}
	return n
}

// memberName reads a member name. The names every token carries come from
// constants instead of fresh allocations.
func (p *jsonParser) memberName() (string, error) {
	end := p.i + 1
	for end < len(p.s) && end-p.i <= 8 && p.s[end] != '"' && p.s[end] != '\\' {
		end++
	}
	if end < len(p.s) && p.s[end] == '"' {
		var known string
		switch string(p.s[p.i+1 : end]) {
		case "alg":
			known = "alg"
		case "typ":
			known = "typ"
		case "kid":
			known = "kid"
		case "sub":
			known = "sub"
		case "exp":
			known = "exp"
		case "nbf":
			known = "nbf"
		case "iat":
			known = "iat"
		case "iss":
			known = "iss"
		case "aud":
			known = "aud"
		case "jti":
			known = "jti"
		case "groups":
			known = "groups"
		}
		if known != "" {
			p.i = end + 1
			return known, nil
		}
	}
	return p.str()
}

// str reads a string; the cursor is on the opening quote. The input is
// known to be valid UTF-8, so only quotes, escapes and control characters
// need attention.
func (p *jsonParser) str() (string, error) {
	p.i++
	start := p.i
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == '"':
			s := string(p.s[start:p.i])
			p.i++
			return s, nil
		case c == '\\':
			return p.strEscaped(start)
		case c < 0x20:
			return "", p.fail("control character in a string")
		}
		p.i++
	}
	return "", p.fail("unterminated string")
}

// strEscaped finishes a string holding escapes; s[start:p.i] is plain.
func (p *jsonParser) strEscaped(start int) (string, error) {
	var b strings.Builder
	b.Grow(p.i - start + 16)
	b.Write(p.s[start:p.i])
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), nil
		case c < 0x20:
			return "", p.fail("control character in a string")
		case c != '\\':
			b.WriteByte(c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.s) {
			break
		}
		e := p.s[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, ok := p.hex4(p.i)
			if !ok {
				return "", p.fail(`invalid \u escape`)
			}
			p.i += 4
			if utf16.IsSurrogate(r) {
				// A high surrogate pairs with an immediately following low
				// one. A lone one is refused: encoding/json reads it as
				// U+FFFD, JavaScript and Python keep it, so the user (or
				// group) read here would not be the one another reader of
				// the same verified bytes sees, and "\ud800" and "\udbff"
				// would be one user (RFC 8259 8.2: the behaviour of such
				// strings is unpredictable).
				r2, ok := rune(0), false
				if p.i+1 < len(p.s) && p.s[p.i] == '\\' && p.s[p.i+1] == 'u' {
					r2, ok = p.hex4(p.i + 2)
				}
				pair := utf16.DecodeRune(r, r2)
				if !ok || pair == utf8.RuneError {
					return "", p.fail("unpaired UTF-16 surrogate escape in a string")
				}
				r = pair
				p.i += 6
			}
			b.WriteRune(r)
		default:
			return "", p.fail("invalid escape in a string")
		}
	}
	return "", p.fail("unterminated string")
}

// hex4 reads four hex digits at i.
func (p *jsonParser) hex4(i int) (rune, bool) {
	if i+4 > len(p.s) {
		return 0, false
	}
	var r rune
	for _, c := range p.s[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// kindOfByte names the JSON type a value starting with c would have.
func kindOfByte(c byte) string {
	switch {
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == '-' || ('0' <= c && c <= '9'):
		return "a number"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	}
	return "something that is not JSON"
}

// Kind names the JSON type of a decoded value, for messages that must
// not echo the value itself.
func Kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// Excerpt quotes text taken from untrusted input for an error message, cut
// to a length that keeps log lines readable.
func Excerpt(s string) string {
	const max = 40
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q...", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}
