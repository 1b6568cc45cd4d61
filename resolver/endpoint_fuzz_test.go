package resolver

import (
	"encoding/json"
	"testing"
)

// FuzzEndpointGroups feeds the group endpoint's answer parser (README "Groups":
// `["a","b"]` or `{"groups":["a","b"]}`, anything else an error) arbitrary
// bodies: it never panics, and every answer it accepts is one of the two
// shapes with strings only, read exactly as encoding/json reads the body.
// A forged group can then only come from a string the endpoint sent, and
// Normalize judges those.
//
//	go test ./resolver -run '^$' -fuzz '^FuzzEndpointGroups$' -fuzztime 60s
func FuzzEndpointGroups(f *testing.F) {
	for _, s := range []string{
		`["a","b"]`,
		`{"groups":["a","b"]}`,
		`{"groups":["a"],"groups":["root"]}`,
		`{"Groups":["root"]}`,
		`{"groups":"root"}`,
		`{"groups":null}`,
		`[1,"a"]`,
		`[["root"]]`,
		`[{"name":"root"}]`,
		`["a,root","ops\r\nX-Okera-User: root"]`,
		`"root"`,
		`null`,
		`[] []`,
		"[\"\xff\"]",
		`{"groups":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		groups, err := parseEndpointGroups(body)
		if err != nil {
			if groups != nil {
				t.Fatalf("groups %q with an error", groups)
			}
			return
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("accepted a body that is not JSON: %q", body)
		}
		list := v
		if obj, ok := v.(map[string]any); ok {
			list, ok = obj["groups"]
			if !ok {
				t.Fatalf("accepted an object without groups: %q", body)
			}
		}
		items, ok := list.([]any)
		if !ok || len(items) != len(groups) {
			t.Fatalf("accepted %q as %q", body, groups)
		}
		for i, item := range items {
			if s, ok := item.(string); !ok || s != groups[i] {
				t.Fatalf("group %d is %#v, parsed as %q", i, item, groups[i])
			}
		}
	})
}
