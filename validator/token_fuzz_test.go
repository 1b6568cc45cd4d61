package validator

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseCompact pins down README "Validation" against arbitrary input:
// ParseCompact never panics, every refusal is a "malformed" *Error that does
// not quote the token, and whatever it accepts is exactly three canonical
// base64url segments whose header and payload are UTF-8 JSON objects without
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

// checkConverse fails when a refused token is one README "Validation" allows:
// three canonical segments, objects the reference parser reads without
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

// hasLoneSurrogateEscape scans the raw bytes for a \uD800-\uDFFF escape
// that is not a high surrogate followed at once by a low one. Escapes
// come in pairs of bytes, so "\\ud800" (a backslash, then text) is none.
// Only string contents hold backslashes in valid JSON, so no tokenizer is
// needed.
func hasLoneSurrogateEscape(data []byte) bool {
	hex := func(i int) (int, bool) {
		if i+4 > len(data) {
			return 0, false
		}
		n, err := strconv.ParseUint(string(data[i:i+4]), 16, 32)
		return int(n), err == nil
	}
	pendingHigh := false
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' || i+1 >= len(data) {
			if pendingHigh {
				return true
			}
			continue
		}
		if data[i+1] != 'u' {
			if pendingHigh {
				return true
			}
			i++
			continue
		}
		v, ok := hex(i + 2)
		i += 5
		switch {
		case !ok:
			return false // not valid JSON; the tokenizer says so
		case v >= 0xD800 && v < 0xDC00:
			if pendingHigh {
				return true
			}
			pendingHigh = true
		case v >= 0xDC00 && v < 0xE000:
			if !pendingHigh {
				return true
			}
			pendingHigh = false
		default:
			if pendingHigh {
				return true
			}
		}
	}
	return pendingHigh
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

// oracleObject is the reference the fuzz tests compare the product's
// decoder with: encoding/json's tokenizer (independent of strictjson),
// refusing what strictjson refuses: invalid UTF-8, anything but one object,
// duplicate member names after unescaping, trailing data, and lone UTF-16
// surrogate escapes (which encoding/json would read as U+FFFD). Numbers are
// json.Number.
func oracleObject(data []byte) (map[string]any, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("not UTF-8")
	}
	if hasLoneSurrogateEscape(data) {
		return nil, errors.New("lone surrogate escape")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := oracleValue(dec)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("not an object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return obj, nil
}

func oracleValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		obj := map[string]any{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			name := k.(string)
			if _, dup := obj[name]; dup {
				return nil, errors.New("duplicate member")
			}
			if obj[name], err = oracleValue(dec); err != nil {
				return nil, err
			}
		}
		_, err := dec.Token() // '}'
		return obj, err
	case json.Delim('['):
		list := []any{}
		for dec.More() {
			v, err := oracleValue(dec)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		_, err := dec.Token() // ']'
		return list, err
	}
	return tok, nil
}
