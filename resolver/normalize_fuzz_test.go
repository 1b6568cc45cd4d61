package resolver

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzNormalize pins down the group rules of README "Groups" against arbitrary
// names: every kept group is trimmed, lower-case, valid UTF-8, free of ',' and
// control characters, and listed once, in first-seen order; every input name is
// either kept (once normalised), reported as dropped (it held a comma or a
// control character), or was blank. Names are separated by the byte 0xFF, which
// is never part of valid UTF-8.
//
//	go test ./resolver -run '^$' -fuzz '^FuzzNormalize$' -fuzztime 60s
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"Analysts\xff ANALYSTS \xffanalysts",
		"a,b\xffroot",
		"admins\r\nX-Okera-User: root\xffok",
		"\x00\xff\t\xff \xff",
		"Ops\u0085\xff\u00a0Sales\u00a0",
		"İstanbul\xffİSTANBUL\xffKelvin \u212a",
		"\u2028sep\xffbidi\u202egnirts",
		"ẞ\xffß\xffSS",
		"\xc0\xaf\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var names []string
		if len(data) > 0 {
			for _, n := range bytes.Split(data, []byte{0xFF}) {
				names = append(names, string(n))
			}
		}
		kept, dropped := Normalize(names)
		seen := map[string]bool{}
		for _, g := range kept {
			switch {
			case g == "":
				t.Fatal("kept an empty group")
			case g != strings.TrimSpace(g):
				t.Fatalf("kept %q, not trimmed", g)
			case g != strings.ToLower(g):
				t.Fatalf("kept %q, not lower-case", g)
			case !utf8.ValidString(g):
				t.Fatalf("kept %q, not UTF-8", g)
			case strings.ContainsRune(g, ','):
				t.Fatalf("kept %q, which holds a comma", g)
			case seen[g]:
				t.Fatalf("kept %q twice in %q", g, kept)
			}
			for _, r := range g {
				if r < 0x20 || (0x7f <= r && r < 0xa0) || unicode.IsControl(r) {
					t.Fatalf("kept %q, which holds the control character %U", g, r)
				}
			}
			seen[g] = true
		}
		lowersToASCII := func(s string) bool {
			return strings.IndexFunc(s, func(r rune) bool { return r > unicode.MaxASCII && unicode.ToLower(r) <= unicode.MaxASCII }) >= 0
		}
		for _, d := range dropped {
			if !strings.ContainsRune(d, ',') && strings.IndexFunc(d, unicode.IsControl) < 0 && !lowersToASCII(d) {
				t.Fatalf("dropped %q, which holds no comma, no control character and nothing that lower-cases into ASCII", d)
			}
		}
		// Every name is accounted for, and kept names come in the order
		// they were first seen.
		next := 0
		for _, n := range names {
			norm := strings.ToLower(strings.TrimSpace(n))
			switch {
			case strings.TrimSpace(norm) == "":
			case slices.Contains(dropped, norm), slices.Contains(dropped, strings.TrimSpace(n)):
			case !seen[norm]:
				t.Fatalf("name %q is neither kept nor dropped (kept %q, dropped %q)", n, kept, dropped)
			case slices.Index(kept, norm) > next:
				t.Fatalf("kept %q out of first-seen order: %q", norm, kept)
			case slices.Index(kept, norm) == next:
				next++
			}
		}
		if next != len(kept) {
			t.Fatalf("kept %q, but only %d of them came from the input", kept, next)
		}
	})
}
