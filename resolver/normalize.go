package resolver

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Normalize applies Okera's group rules: names are trimmed and lower-cased
// (Okera compares groups case-insensitively) and de-duplicated in first-seen
// order. A name holding a comma would split into two groups once joined into
// the groups header, and a control character could forge header or log
// content, so such names are dropped and returned separately. So is a name
// that lower-casing would turn from non-ASCII into ASCII letters (U+0130 "İ"
// becomes "i", the Kelvin sign "K" becomes "k"): otherwise a directory or a
// token could mint `admins` from `ADMİNS` (README "Security notes"). Empty
// names are skipped silently.
func Normalize(names []string) (kept, dropped []string) {
	if len(names) == 0 {
		return nil, nil
	}
	kept = make([]string, 0, len(names))
	// A linear scan is cheapest for the usual handful of groups; a long
	// list (a directory's thousand groups, a padded claim) gets a set.
	var seen map[string]struct{}
	if len(names) > 32 {
		seen = make(map[string]struct{}, len(names))
	}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if lowersIntoASCII(n) {
			dropped = append(dropped, n)
			continue
		}
		n = strings.ToLower(n)
		if n == "" {
			continue
		}
		if strings.ContainsRune(n, ',') || strings.IndexFunc(n, unicode.IsControl) >= 0 {
			dropped = append(dropped, n)
			continue
		}
		if seen != nil {
			if _, dup := seen[n]; dup {
				continue
			}
			seen[n] = struct{}{}
		} else if slices.Contains(kept, n) {
			continue
		}
		kept = append(kept, n)
	}
	return kept, dropped
}

// lowersIntoASCII reports whether lower-casing maps a non-ASCII rune of s
// to an ASCII one. Plain ASCII names, the usual case, cost one pass over
// their bytes and no allocation.
func lowersIntoASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			for _, r := range s[i:] {
				if r >= utf8.RuneSelf && unicode.ToLower(r) < utf8.RuneSelf {
					return true
				}
			}
			return false
		}
	}
	return false
}
