package strictjson

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// On duplicate-free valid JSON objects the strict parser reads exactly what
// encoding/json reads (with UseNumber); it only refuses more.
func TestDecodeStrictObjectMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		`{}`,
		` {"a" : 1 } `,
		"{\"a\":\t[ 1 ,2\r\n, 3 ]}",
		`{"n":[0,-0,1.5,-2.25e10,3E+2,4e-3,12345678901234567890123]}`,
		`{"b":[true,false,null],"o":{"x":{"y":{}}},"e":[]}`,
		`{"s":"plain","u":"zoë ☃ 𝄞"}`,
		`{"esc":"\"\\\/\b\f\n\r\t"}`,
		`{"uni":"\u0041\u00e9\u2603\ud834\udd1e"}`,
		`{"mixed":"a\u0062c\"d"}`,
		`{"s\u0075b":"escaped name"}`,
		`{"deep":[[[[[[[[[[{"k":"v"}]]]]]]]]]]}`,
		`{"HEX":"\u00E9\u00e9"}`,
	}
	for _, in := range inputs {
		got, err := DecodeObject([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(in)))
		dec.UseNumber()
		var want map[string]any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("%s: encoding/json: %v", in, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s:\n got %#v\nwant %#v", in, got, want)
		}
	}
}

// A lone surrogate escape is refused, in a value and in a member name:
// encoding/json reads it as U+FFFD, JavaScript and Python keep it, so the
// gateway would forward "\uFFFD" as the user that another reader of the
// same verified bytes sees as something else, and "\ud800" and "\udbff"
// would be one user here (README "Security notes").
func TestDecodeObjectRefusesLoneSurrogates(t *testing.T) {
	for _, in := range []string{
		`{"sub":"\ud800"}`,
		`{"sub":"\udc00x"}`,
		`{"sub":"\ud800\ud800"}`,
		`{"sub":"\ud800\u0041"}`,
		`{"sub":"a\ud834"}`,
		`{"sub":"\udbff\udbff\udfff"}`,
		`{"\ud800":1}`,
		`{"groups":["\udc00admins"]}`,
	} {
		if v, err := DecodeObject([]byte(in)); err == nil {
			t.Errorf("%s accepted as %q", in, v)
		}
		if v, err := Decode([]byte(in)); err == nil {
			t.Errorf("Decode: %s accepted as %q", in, v)
		}
	}
	// A proper pair and a literal U+FFFD are text like any other.
	for _, in := range []string{`{"sub":"\ud834\udd1e"}`, `{"sub":"\uD834\uDD1E"}`, `{"sub":"\ufffd"}`, "{\"sub\":\"\uFFFD\"}"} {
		if _, err := DecodeObject([]byte(in)); err != nil {
			t.Errorf("%s: %v", in, err)
		}
	}
}

// Everything encoding/json refuses as a value, the strict parser refuses too.
func TestDecodeStrictObjectRefusesInvalidJSON(t *testing.T) {
	inputs := []string{
		`{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":1e+}`, `{"a":+1}`,
		`{"a":tru}`, `{"a":nul}`, `{"a":True}`, `{"a":NaN}`, `{"a":Infinity}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12G4"}`, `{"a":"\U0041"}`, `{"a":"tab	inside"}`, "{\"a\":\"nl\ninside\"}",
		`{"a":'x'}`, `{a:1}`, `{"a" 1}`, `{"a":1 "b":2}`, `{"a":[1,]}`, `{"a":[1 2]}`, `{"a":}`, `{,}`, `{"a":1,}`,
		`{"a":"unterminated}`, `{"a":"esc at end\`, `{"a":[`, `{"a":{`, `{`, "\ufeff{}", `{"a":1}/**/`,
	}
	for _, in := range inputs {
		if json.Valid([]byte(in)) {
			t.Fatalf("test input %q is valid JSON", in)
		}
		if _, err := DecodeObject([]byte(in)); err == nil {
			t.Fatalf("%q accepted", in)
		}
	}
	// Sanity: the messages carry no input beyond a clipped member name.
	_, err := DecodeObject([]byte(`{"` + strings.Repeat("k", 100) + `":1,"` + strings.Repeat("k", 100) + `":2}`))
	if err == nil || len(err.Error()) > 80 {
		t.Fatalf("duplicate long name: %v", err)
	}
}
