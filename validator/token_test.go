package validator

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/okeragate/caddy-okera-auth/internal/strictjson"
)

const (
	okHeader  = `{"alg":"RS256","typ":"JWT","kid":"k1"}`
	okPayload = `{"sub":"alice","exp":1900000000,"groups":["a","b"],"nested":{"x":[1,{"y":true}]}}`
)

// okSig stands for a signature: ParseCompact checks its syntax, not its value.
var okSig = base64.RawURLEncoding.EncodeToString([]byte("not a real signature, 32 bytes.."))

func compact(header, payload string) string {
	return b64(header) + "." + b64(payload) + "." + okSig
}

// nonCanonical sets an unused trailing bit of seg's last character: the
// result decodes to the same bytes under a lenient decoder.
func nonCanonical(tb testing.TB, seg string) string {
	tb.Helper()
	if len(seg)%4 == 0 {
		tb.Fatalf("segment %q has no unused bits", seg)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last|1])
}

// A lenient decoder must accept the non-canonical spelling, or the test
// proves nothing.
func TestNonCanonicalHelper(t *testing.T) {
	seg := b64(okPayload + " ") // length not a multiple of 3
	bad := nonCanonical(t, seg)
	if bad == seg {
		t.Fatal("helper did not change the segment")
	}
	got, err := base64.RawURLEncoding.DecodeString(bad)
	if err != nil || string(got) != okPayload+" " {
		t.Fatalf("lenient decode of the non-canonical segment: %q, %v", got, err)
	}
}

func TestParseCompactAccepts(t *testing.T) {
	tests := []struct {
		name    string
		token   string
		wantAlg string
		wantKid string
	}{
		{"basic", compact(okHeader, okPayload), "RS256", "k1"},
		{"no kid", compact(`{"alg":"RS512"}`, okPayload), "RS512", ""},
		{"JSON whitespace", compact(" {\n\t\"alg\" : \"RS256\" }\r\n", " { \"sub\" : \"alice\" } "), "RS256", ""},
		{"cty other than JWT", compact(`{"alg":"RS256","cty":"json"}`, okPayload), "RS256", ""},
		// Syntax is not the place that refuses algorithms: key validation is.
		{"alg none parses", compact(`{"alg":"none"}`, okPayload), "none", ""},
		{"alg HS256 parses", compact(`{"alg":"HS256"}`, okPayload), "HS256", ""},
		// Header keys and URLs are ignored, not refused.
		{"jwk and jku ignored", compact(`{"alg":"RS256","jwk":{"kty":"RSA","n":"AQAB","e":"AQAB"},"jku":"https://evil.example/k"}`, okPayload), "RS256", ""},
		{"nesting at the limit", compact(okHeader, `{"sub":"a","x":`+strings.Repeat("[", strictjson.MaxDepth-1)+strings.Repeat("]", strictjson.MaxDepth-1)+`}`), "RS256", "k1"},
		{"escaped member names", compact(okHeader, `{"s\u0075b":"alice"}`), "RS256", "k1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := ParseCompact(tt.token)
			if err != nil {
				t.Fatalf("ParseCompact: %v", err)
			}
			if tok.Alg != tt.wantAlg || tok.Kid != tt.wantKid {
				t.Fatalf("alg %q kid %q, want %q %q", tok.Alg, tok.Kid, tt.wantAlg, tt.wantKid)
			}
			if tok.Payload == nil || tok.Header == nil {
				t.Fatal("header or payload not decoded")
			}
			// Canonical: each segment re-encodes to itself.
			parts := strings.Split(tt.token, ".")
			for i, raw := range parts[:2] {
				dec, _ := base64.RawURLEncoding.DecodeString(raw)
				if base64.RawURLEncoding.EncodeToString(dec) != raw {
					t.Fatalf("segment %d of an accepted token is not canonical", i)
				}
			}
		})
	}

	t.Run("payload types", func(t *testing.T) {
		tok, err := ParseCompact(compact(okHeader, okPayload))
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := tok.Payload["exp"].(json.Number); !ok || got != "1900000000" {
			t.Fatalf("exp decoded as %T %v, want json.Number", tok.Payload["exp"], tok.Payload["exp"])
		}
		groups, ok := tok.Payload["groups"].([]any)
		if !ok || len(groups) != 2 || groups[0] != "a" {
			t.Fatalf("groups decoded as %#v", tok.Payload["groups"])
		}
		nested := tok.Payload["nested"].(map[string]any)["x"].([]any)
		if nested[1].(map[string]any)["y"] != true {
			t.Fatalf("nested decoded as %#v", nested)
		}
	})
}

func TestParseCompactRefuses(t *testing.T) {
	h, p := b64(okHeader), b64(okPayload)
	valid := h + "." + p + "." + okSig
	// A payload whose standard base64 holds '+' and '/'.
	stdPayload := `{"sub":"a>>>???~~~"}`
	std := base64.RawStdEncoding.EncodeToString([]byte(stdPayload))
	if !strings.ContainsAny(std, "+/") {
		t.Fatalf("test payload encodes without + or /: %s", std)
	}
	// Segments with unused trailing bits.
	hOdd := b64(`{"alg":"RS256"} `)
	pOdd := b64(okPayload + "  ")
	sOdd := base64.RawURLEncoding.EncodeToString([]byte("sig" + "x"))
	if len(hOdd)%4 == 0 || len(pOdd)%4 == 0 || len(sOdd)%4 == 0 {
		t.Fatal("test segments need lengths that are not multiples of 4")
	}
	deep := `{"sub":"a","x":` + strings.Repeat("[", strictjson.MaxDepth) + strings.Repeat("]", strictjson.MaxDepth) + `}`

	tests := []struct {
		name  string
		token string
		want  string // substring of the error
	}{
		// Serializations other than compact.
		{"JSON general serialization", `{"payload":"` + p + `","signatures":[{"protected":"` + h + `","signature":"` + okSig + `"}]}`, "no '.'"},
		{"JSON flattened serialization", `{"payload":"` + p + `","protected":"` + h + `","signature":"` + okSig + `"}`, "no '.'"},
		{"one segment", h, "no '.'"},
		{"two segments", h + "." + p, "2 segments"},
		{"four segments", valid + "." + okSig, "4 segments"},
		{"JWE five segments", b64(`{"alg":"RSA-OAEP","enc":"A256GCM"}`) + ".AAAA.AAAA.AAAA.AAAA", "5 segments"},
		{"empty", "", "no '.'"},
		{"only dots", "..", "header segment is empty"},
		{"empty header", "." + p + "." + okSig, "header segment is empty"},
		{"empty payload", h + ".." + okSig, "payload segment is empty"},
		{"stripped signature", h + "." + p + ".", "signature segment is empty"},
		// Alphabet and padding.
		{"padded header", h + "=." + p + "." + okSig, "padding"},
		{"padded payload", h + "." + p + "==." + okSig, "padding"},
		{"padded signature", valid + "=", "padding"},
		{"space inside header", h[:4] + " " + h[4:] + "." + p + "." + okSig, "whitespace"},
		{"newline inside payload", h + "." + p[:8] + "\n" + p[8:] + "." + okSig, "whitespace"},
		{"CRLF inside signature", h + "." + p + "." + okSig[:4] + "\r\n" + okSig[4:], "whitespace"},
		{"tab", h + "\t." + p + "." + okSig, "whitespace"},
		{"leading space", " " + valid, "whitespace"},
		{"trailing newline", valid + "\n", "whitespace"},
		{"standard alphabet", h + "." + std + "." + okSig, "standard base64 alphabet"},
		{"slash in signature", valid[:len(valid)-2] + "/A", "standard base64 alphabet"},
		{"other byte", h + "." + p + "." + "ab*d", "outside the base64url alphabet"},
		{"non-ASCII", h + "." + p + "." + "abcé", "outside the base64url alphabet"},
		{"NUL byte", h + "." + p + "\x00." + okSig, "outside the base64url alphabet"},
		{"impossible length", h + "." + p + "." + okSig + "AA", "impossible base64url length"}, // 45 characters
		{"non-canonical header", nonCanonical(t, hOdd) + "." + p + "." + okSig, "not canonical"},
		{"non-canonical payload", h + "." + nonCanonical(t, pOdd) + "." + okSig, "not canonical"},
		{"non-canonical signature", h + "." + p + "." + nonCanonical(t, sOdd), "not canonical"},
		// JSON.
		{"duplicate header member", compact(`{"alg":"RS256","alg":"none"}`, okPayload), `duplicate member name "alg"`},
		{"duplicate payload member", compact(okHeader, `{"sub":"alice","sub":"admin"}`), `duplicate member name "sub"`},
		{"duplicate after escaping", compact(okHeader, `{"sub":"alice","\u0073ub":"admin"}`), `duplicate member name "sub"`},
		{"duplicate nested", compact(okHeader, `{"sub":"a","x":{"k":1,"k":2}}`), `duplicate member name "k"`},
		{"duplicate in array", compact(okHeader, `{"sub":"a","x":[{"k":1,"k":2}]}`), `duplicate member name "k"`},
		{"duplicate in header object", compact(`{"alg":"RS256","jwk":{"n":"a","n":"b"}}`, okPayload), `duplicate member name "n"`},
		{"invalid UTF-8 header", compact("{\"alg\":\"RS256\",\"x\":\"\xff\"}", okPayload), "UTF-8"},
		{"invalid UTF-8 payload", compact(okHeader, "{\"sub\":\"al\xc3\x28ice\"}"), "UTF-8"},
		{"invalid UTF-8 member name", compact(okHeader, "{\"sub\":\"a\",\"\xed\xa0\x80\":1}"), "UTF-8"},
		{"payload array", compact(okHeader, `[{"sub":"a"}]`), "not a JSON object"},
		{"payload string", compact(okHeader, `"sub"`), "not a JSON object"},
		{"payload number", compact(okHeader, `1`), "not a JSON object"},
		{"payload null", compact(okHeader, `null`), "not a JSON object"},
		{"header array", compact(`["RS256"]`, okPayload), "not a JSON object"},
		{"payload not JSON", compact(okHeader, `sub=alice`), "not JSON"},
		{"payload whitespace only", compact(okHeader, `   `), "not JSON"},
		{"trailing data", compact(okHeader, `{"sub":"a"}x`), "after the JSON object"},
		{"two objects", compact(okHeader, `{"sub":"a"}{"sub":"b"}`), "after the JSON object"},
		{"trailing brace", compact(okHeader, `{"sub":"a"}}`), "after the JSON object"},
		{"trailing comma", compact(okHeader, `{"sub":"a",}`), "invalid JSON"},
		{"unterminated", compact(okHeader, `{"sub":"a"`), "invalid JSON"},
		{"too deep", compact(okHeader, deep), "nested deeper"},
		// Header parameters we refuse.
		{"crit", compact(`{"alg":"RS256","crit":["exp"],"exp":1}`, okPayload), "crit"},
		{"crit empty", compact(`{"alg":"RS256","crit":[]}`, okPayload), "crit"},
		{"b64 false", compact(`{"alg":"RS256","b64":false}`, okPayload), "b64"},
		{"b64 true", compact(`{"alg":"RS256","b64":true}`, okPayload), "b64"},
		{"cty JWT", compact(`{"alg":"RS256","cty":"JWT"}`, okPayload), "nested"},
		{"cty jwt", compact(`{"alg":"RS256","cty":"jwt"}`, okPayload), "nested"},
		{"cty Jwt", compact(`{"alg":"RS256","cty":"Jwt"}`, okPayload), "nested"},
		{"cty not a string", compact(`{"alg":"RS256","cty":1}`, okPayload), "cty is a number"},
		{"enc", compact(`{"alg":"RS256","enc":"A256GCM"}`, okPayload), "JWE"},
		{"alg missing", compact(`{"typ":"JWT"}`, okPayload), "no alg"},
		{"alg empty", compact(`{"alg":""}`, okPayload), "alg is a string, want a non-empty string"},
		{"alg number", compact(`{"alg":256}`, okPayload), "alg is a number"},
		{"alg null", compact(`{"alg":null}`, okPayload), "alg is null"},
		{"alg list", compact(`{"alg":["RS256"]}`, okPayload), "alg is an array"},
		{"kid number", compact(`{"alg":"RS256","kid":1}`, okPayload), "kid is a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := ParseCompact(tt.token)
			if err == nil {
				t.Fatalf("accepted: %+v", tok)
			}
			var verr *Error
			if !errors.As(err, &verr) || verr.Reason != ReasonMalformed || verr.Unavailable {
				t.Fatalf("error %#v is not a malformed *Error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
			if len(tt.token) > 16 {
				checkNoToken(t, err, tt.token)
			}
		})
	}
}

// Every byte-string encodes canonically, and every other spelling of the
// same bytes is refused.
func TestCheckSegmentCanonical(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for n := 1; n <= 12; n++ {
		data := []byte(strings.Repeat("\xa5", n))
		seg := base64.RawURLEncoding.EncodeToString(data)
		if err := checkSegment("x", seg); err != nil {
			t.Fatalf("canonical %q refused: %v", seg, err)
		}
		for _, c := range []byte(alphabet) {
			alt := seg[:len(seg)-1] + string(c)
			if alt == seg {
				continue
			}
			dec, err := base64.RawURLEncoding.DecodeString(alt)
			sameBytes := err == nil && string(dec) == string(data)
			if sameBytes && checkSegment("x", alt) == nil {
				t.Fatalf("non-canonical %q (same bytes as %q) accepted", alt, seg)
			}
		}
	}
}
