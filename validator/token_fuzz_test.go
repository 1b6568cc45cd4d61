package validator

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// FuzzParseCompact pins down SPEC 2.1 against arbitrary input: ParseCompact
// never panics, every refusal is a "malformed" *Error that does not quote
// the token, and whatever it accepts is exactly three canonical base64url
// segments whose header and payload are UTF-8 JSON objects without
// duplicate member names, decoded to the same values an independent parser
// finds. The converse is checked too, so the strictness cannot grow into
// refusing well-formed tokens.
//
//	go test ./validator -run '^$' -fuzz '^FuzzParseCompact$' -fuzztime 60s
func FuzzParseCompact(f *testing.F) {
	for _, s := range []string{
		compact(okHeader, okPayload),
		compact(`{"alg":"RS512"}`, `{"sub":"alice"}`),
		compact(`{"alg":"none"}`, `{"sub":"alice"}`),
		compact(`{"alg":"RS256","alg":"none"}`, `{"sub":"a"}`),
		compact(`{"alg":"RS256"}`, `{"sub":"a","\u0073ub":"b"}`),
		compact(`{"alg":"RS256","crit":["b64"],"b64":false}`, `{}`),
		compact(`{"alg":"RS256","cty":"jwt"}`, `{}`),
		compact(`{"alg":"RS256","kid":7}`, `{}`),
		compact(`{"alg":"RS256","enc":"A256GCM"}`, `{}`),
		compact("\ufeff{\"alg\":\"RS256\"}", `{}`),
		compact(`{"alg":"RS256"}`, "{\"sub\":\"al\xffice\"}"),
		compact(`{"alg":"RS256"}`, `{"exp":1e400,"nbf":-1,"iat":"1"}`),
		compact(`{"alg":"RS256"}`, `{"a":[[[[[[[[[[[[[[[[{"b":{}}]]]]]]]]]]]]]]]}`),
		compact(`{"alg":"RS256"}`, `{"sub":"\ud800","\udc00":1}`),
		compact(`{"alg":"RS256"}`, `{} {}`),
		compact(`{"alg":"RS256"}`, `[]`),
		b64(`{"alg":"RS256"}`) + "." + b64(`{}`) + ".",
		b64(`{"alg":"RS256"}`) + "==." + b64(`{}`) + "." + okSig,
		b64(`{"alg":"RS256"}`) + "." + b64(`{}`) + "." + okSig + "." + okSig + "." + okSig,
		`{"payload":"e30","protected":"eyJhbGciOiJSUzI1NiJ9","signature":"c2ln"}`,
		"a.b.c",
		"..",
		strings.Repeat(".", 64),
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		tok, err := ParseCompact(token)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Reason != ReasonMalformed || e.Unavailable {
				t.Fatalf("refusal %#v is not a malformed *Error", err)
			}
			if len(token) >= 16 && strings.Contains(err.Error(), token) {
				t.Fatalf("the error quotes the token: %v", err)
			}
			checkConverse(t, token)
			return
		}
		segs := strings.Split(token, ".")
		if len(segs) != 3 {
			t.Fatalf("accepted %d segments", len(segs))
		}
		var decoded [2][]byte
		for i, seg := range segs {
			if seg == "" {
				t.Fatalf("accepted an empty segment %d", i)
			}
			raw, err := base64.RawURLEncoding.Strict().DecodeString(seg)
			if err != nil {
				t.Fatalf("accepted segment %d that is not base64url: %v", i, err)
			}
			if again := base64.RawURLEncoding.EncodeToString(raw); again != seg {
				t.Fatalf("accepted the non-canonical segment %d %q (canonical %q)", i, seg, again)
			}
			if i < 2 {
				decoded[i] = raw
			}
		}
		for i, name := range []string{"header", "payload"} {
			want, err := oracleObject(decoded[i])
			if err != nil {
				t.Fatalf("accepted a %s the reference parser refuses: %v (%q)", name, err, decoded[i])
			}
			got := tok.Header
			if i == 1 {
				got = tok.Payload
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s decoded as %#v, the reference parser reads %#v", name, got, want)
			}
		}
		checkHeaderRules(t, tok)
	})
}

// checkHeaderRules: the protected header members ParseCompact promises to
// have judged.
func checkHeaderRules(t *testing.T, tok *Token) {
	t.Helper()
	alg, ok := tok.Header["alg"].(string)
	if !ok || alg == "" || alg != tok.Alg {
		t.Fatalf("accepted alg %#v (Token.Alg %q)", tok.Header["alg"], tok.Alg)
	}
	if v, ok := tok.Header["kid"]; ok {
		if kid, isStr := v.(string); !isStr || kid != tok.Kid {
			t.Fatalf("accepted kid %#v (Token.Kid %q)", v, tok.Kid)
		}
	} else if tok.Kid != "" {
		t.Fatalf("Token.Kid %q without a kid member", tok.Kid)
	}
	for _, name := range []string{"crit", "b64", "enc"} {
		if _, ok := tok.Header[name]; ok {
			t.Fatalf("accepted a header with %s", name)
		}
	}
	if v, ok := tok.Header["cty"]; ok {
		if cty, isStr := v.(string); !isStr || strings.EqualFold(cty, "JWT") {
			t.Fatalf("accepted cty %#v", v)
		}
	}
}

// checkConverse fails when a refused token is one SPEC 2.1 allows: three
// canonical segments, objects the reference parser reads without
// duplicates at a modest depth, and an acceptable header.
func checkConverse(t *testing.T, token string) {
	t.Helper()
	segs := strings.Split(token, ".")
	if len(segs) != 3 {
		return
	}
	var objs [2]map[string]any
	for i, seg := range segs {
		if seg == "" {
			return
		}
		raw, err := base64.RawURLEncoding.Strict().DecodeString(seg)
		if err != nil || base64.RawURLEncoding.EncodeToString(raw) != seg {
			return
		}
		if i == 2 {
			break
		}
		if depthOver(raw, 32) {
			return
		}
		if objs[i], err = oracleObject(raw); err != nil {
			return
		}
	}
	h := objs[0]
	if alg, ok := h["alg"].(string); !ok || alg == "" {
		return
	}
	if v, ok := h["kid"]; ok {
		if _, isStr := v.(string); !isStr {
			return
		}
	}
	for _, name := range []string{"crit", "b64", "enc"} {
		if _, ok := h[name]; ok {
			return
		}
	}
	if v, ok := h["cty"]; ok {
		if cty, isStr := v.(string); !isStr || strings.EqualFold(cty, "JWT") {
			return
		}
	}
	_, err := ParseCompact(token)
	t.Fatalf("refused a well-formed token: %v", err)
}

// depthOver reports brackets nested deeper than max, counting bytes only
// (strings may hide brackets, which makes it err on the side of skipping).
func depthOver(data []byte, max int) bool {
	d := 0
	for _, c := range data {
		switch c {
		case '{', '[':
			d++
			if d > max {
				return true
			}
		case '}', ']':
			d--
		}
	}
	return false
}

// oracleObject is a reference RFC 8259 parser written for the fuzz tests,
// independent of the product's decoder: one JSON object, UTF-8 only,
// duplicate member names (compared after unescaping) refused, numbers as
// json.Number, lone surrogate escapes read as U+FFFD like encoding/json.
func oracleObject(data []byte) (map[string]any, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("not UTF-8")
	}
	p := &oracleParser{s: data}
	p.ws()
	if p.peek() != '{' {
		return nil, errors.New("not an object")
	}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.s) {
		return nil, errors.New("trailing data")
	}
	return v.(map[string]any), nil
}

type oracleParser struct {
	s []byte
	i int
}

func (p *oracleParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *oracleParser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *oracleParser) value(depth int) (any, error) {
	if depth > 10000 {
		return nil, errors.New("too deep")
	}
	p.ws()
	switch c := p.peek(); {
	case c == '{':
		p.i++
		obj := map[string]any{}
		p.ws()
		if p.peek() == '}' {
			p.i++
			return obj, nil
		}
		for {
			p.ws()
			if p.peek() != '"' {
				return nil, errors.New("member name is not a string")
			}
			name, err := p.str()
			if err != nil {
				return nil, err
			}
			if _, dup := obj[name]; dup {
				return nil, errors.New("duplicate member " + strconv.Quote(name))
			}
			p.ws()
			if p.peek() != ':' {
				return nil, errors.New("no colon")
			}
			p.i++
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			obj[name] = v
			p.ws()
			switch p.peek() {
			case ',':
				p.i++
			case '}':
				p.i++
				return obj, nil
			default:
				return nil, errors.New("bad object")
			}
		}
	case c == '[':
		p.i++
		arr := []any{}
		p.ws()
		if p.peek() == ']' {
			p.i++
			return arr, nil
		}
		for {
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
			p.ws()
			switch p.peek() {
			case ',':
				p.i++
			case ']':
				p.i++
				return arr, nil
			default:
				return nil, errors.New("bad array")
			}
		}
	case c == '"':
		return p.str()
	case c == '-' || ('0' <= c && c <= '9'):
		return p.num()
	default:
		for lit, v := range map[string]any{"true": true, "false": false, "null": nil} {
			if strings.HasPrefix(string(p.s[p.i:]), lit) {
				p.i += len(lit)
				return v, nil
			}
		}
		return nil, errors.New("unexpected byte")
	}
}

func (p *oracleParser) num() (json.Number, error) {
	start := p.i
	digits := func() int {
		n := 0
		for p.i < len(p.s) && '0' <= p.s[p.i] && p.s[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.peek() == '-' {
		p.i++
	}
	if p.peek() == '0' {
		p.i++
	} else if digits() == 0 {
		return "", errors.New("bad number")
	}
	if p.peek() == '.' {
		p.i++
		if digits() == 0 {
			return "", errors.New("bad fraction")
		}
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.i++
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		if digits() == 0 {
			return "", errors.New("bad exponent")
		}
	}
	return json.Number(p.s[start:p.i]), nil
}

func (p *oracleParser) str() (string, error) {
	p.i++ // opening quote
	var b strings.Builder
	for {
		if p.i >= len(p.s) {
			return "", errors.New("unterminated string")
		}
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), nil
		case c < 0x20:
			return "", errors.New("control character in string")
		case c != '\\':
			b.WriteByte(c)
			p.i++
			continue
		}
		p.i++
		if p.i >= len(p.s) {
			return "", errors.New("unterminated escape")
		}
		e := p.s[p.i]
		p.i++
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
			r, ok := p.hex4()
			if !ok {
				return "", errors.New("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// A high surrogate pairs with an immediately following low
				// one; anything else is U+FFFD, as encoding/json reads it.
				save := p.i
				if r < 0xDC00 && p.i+1 < len(p.s) && p.s[p.i] == '\\' && p.s[p.i+1] == 'u' {
					p.i += 2
					if r2, ok := p.hex4(); ok {
						if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
							b.WriteRune(pair)
							continue
						}
					}
					p.i = save
				}
				r = utf8.RuneError
			}
			b.WriteRune(r)
		default:
			return "", errors.New("bad escape")
		}
	}
}

func (p *oracleParser) hex4() (rune, bool) {
	if p.i+4 > len(p.s) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.s[p.i:p.i+4]), 16, 32)
	if err != nil || strings.ContainsAny(string(p.s[p.i:p.i+4]), "+-") {
		return 0, false
	}
	p.i += 4
	return rune(n), true
}
