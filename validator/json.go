package validator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting of header, payload and endpoint answers.
// The token-level decoder below recurses once per level and encoding/json's
// Token API has no depth limit of its own; no real claim set nests past a
// handful of levels, so 64 costs nothing legitimate and bounds the stack.
const maxJSONDepth = 64

// decodeStrictObject decodes data as exactly one JSON object, refusing what
// encoding/json silently tolerates: invalid UTF-8 (which it replaces with
// U+FFFD), duplicate member names at any depth (which it resolves by keeping
// the last one, while other parsers keep the first: two parties could then
// read different claims from the same verified bytes), and anything but
// whitespace after the object. Numbers are json.Number, so a huge exp is
// seen as such rather than rounded into range. Member names are compared
// after unescaping, so "sub" and "\u0073ub" are duplicates.
//
// It walks the token stream once and builds the map on the way, so duplicate
// detection costs no second pass.
func decodeStrictObject(data []byte) (map[string]any, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("not a JSON object (starts with %s)", jsonKind(tok))
	}
	obj, err := readObject(dec, 1)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return obj, nil
}

// readObject reads members up to and including the closing brace; the
// opening brace has been consumed.
func readObject(dec *json.Decoder, depth int) (map[string]any, error) {
	obj := make(map[string]any, 8)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("invalid JSON: object member name is not a string")
		}
		if _, dup := obj[name]; dup {
			return nil, fmt.Errorf("duplicate member name %s", quoteShort(name))
		}
		v, err := readValue(dec, depth)
		if err != nil {
			return nil, err
		}
		obj[name] = v
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return obj, nil
}

func readArray(dec *json.Decoder, depth int) ([]any, error) {
	arr := make([]any, 0, 4)
	for dec.More() {
		v, err := readValue(dec, depth)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return arr, nil
}

func readValue(dec *json.Decoder, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // string, json.Number, bool or nil
	}
	if depth >= maxJSONDepth {
		return nil, fmt.Errorf("JSON nested deeper than %d levels", maxJSONDepth)
	}
	switch d {
	case '{':
		return readObject(dec, depth+1)
	case '[':
		return readArray(dec, depth+1)
	}
	// The decoder never hands out a closing delimiter where a value starts.
	return nil, fmt.Errorf("invalid JSON: unexpected %q", rune(d))
}

// jsonKind names the JSON type of a decoded value, for messages that must
// not echo the value itself.
func jsonKind(v any) string {
	switch v := v.(type) {
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
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// quoteShort quotes attacker-controlled text for an error message, cut to a
// length that keeps log lines readable.
func quoteShort(s string) string {
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
