//go:build bench

package bench

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// Mode keys, in the order the front ends are driven within a round.
const (
	modeBare       = "bare"
	modeKeyWarm    = "key-warm"
	modeColdRS256  = "key-cold-rs256"
	modeColdRS512  = "key-cold-rs512"
	modeRemoteWarm = "remote-warm"
	modeLDAPWarm   = "ldap-warm"
	modeMintedWarm = "minted-warm"
)

// goal is the target for a mode, relative to the bare proxy.
type goal struct {
	minRPS float64 // rps ratio at least this (0: none)
	maxP99 float64 // p99 ratio at most this (0: none)
}

func (g goal) String() string {
	var parts []string
	if g.minRPS > 0 {
		parts = append(parts, fmt.Sprintf("rps ≥ %.2f×", g.minRPS))
	}
	if g.maxP99 > 0 {
		parts = append(parts, fmt.Sprintf("p99 ≤ %.1f×", g.maxP99))
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, ", ")
}

var (
	warmGoal = goal{minRPS: 0.95, maxP99: 1.2}
	coldGoal = goal{minRPS: 0.80}
)

// mode is one front end: its config, its tokens, and what it measured.
type mode struct {
	key     string
	title   string
	goal    goal
	handler string // the okera_auth block; empty for the bare proxy
	cold    bool   // every request a new token
	pool    *tokenPool
	warm    fixedTokens // the tokens of a warm mode (and of the bare proxy)
	// expect checks the identity the upstream received for a request
	// with the given Authorization value.
	expect func(sent string, h http.Header) error

	skip  string // why the mode was not measured
	notes []string

	gw  *gateway
	tgt *target

	sanityToken string
	// cold modes: every request takes the pool's next token
	cursor     *poolCursor
	probeRPS   float64
	coldTokens int64 // tokens the measured rounds used
	runs       []runStats
	summary    summary
	prof       *profileResult
}

func (m *mode) source() tokenSource {
	if m.cold {
		return m.cursor
	}
	return m.warm
}

// env is what the modes' configs refer to.
type env struct {
	dir         string // the run's directory: key files and the system token
	upstream    string // host:port
	systemToken string
	ldap        *ldapInfo // nil without slapd
}

type ldapInfo struct {
	url, bindDN, bindPassword, baseDN string
}

// buildModes lists every front end in driving order.
func buildModes(e env, warmGroups, warmNoGroups fixedTokens, p256, p512 *tokenPool) []*mode {
	keyBlock := func(alg string, extra ...string) string {
		var b strings.Builder
		b.WriteString("\tokera_auth {\n")
		fmt.Fprintf(&b, "\t\tpublic_key %s/idp.pub %s\n", e.dir, alg)
		for _, x := range extra {
			b.WriteString("\t\t" + x + "\n")
		}
		b.WriteString("\t}\n")
		return b.String()
	}
	system := "system_token " + e.dir + "/system.token"
	viaSystem := func(user, groups string) func(string, http.Header) error {
		return func(_ string, h http.Header) error {
			return expectIdentity(h, user, groups, "Bearer "+e.systemToken)
		}
	}
	modes := []*mode{
		{
			key: modeBare, title: "bare reverse_proxy (the limit)",
			warm: warmGroups,
			expect: func(sent string, h http.Header) error {
				return expectIdentity(h, "", "", sent)
			},
		},
		{
			key: modeKeyWarm, title: "public key, token cache warm",
			goal: warmGoal, handler: keyBlock("RSA256", system), warm: warmGroups,
			expect: viaSystem("alice", "analysts,data"),
		},
		{
			key: modeColdRS256, title: "public key, new token each request, RS256",
			goal: coldGoal, handler: keyBlock("RSA256", system), cold: true, pool: p256,
			expect: viaSystem("alice", "analysts,data"),
		},
		{
			key: modeColdRS512, title: "public key, new token each request, RS512",
			handler: keyBlock("RSA512", system), cold: true, pool: p512,
			expect: viaSystem("alice", "analysts,data"),
		},
		{
			key: modeRemoteWarm, title: "remote endpoint, cache_ttl warm",
			goal: warmGoal, warm: warmGroups,
			handler: "\tokera_auth {\n" +
				"\t\tremote_endpoint http://" + e.upstream + "/validate {\n\t\t\tcache_ttl 10m\n\t\t}\n" +
				"\t\t" + system + "\n\t}\n",
			expect: viaSystem(remoteUser, remoteGroups),
		},
		{
			key: modeLDAPWarm, title: "LDAP groups, group cache warm",
			goal: warmGoal, warm: warmNoGroups,
			expect: func(_ string, h http.Header) error {
				if err := expectIdentity(h, "alice", "", "Bearer "+e.systemToken); err != nil {
					return err
				}
				got := strings.Split(h.Get("X-Seen-Groups"), ",")
				slices.Sort(got)
				if strings.Join(got, ",") != "analysts,engineering" {
					return fmt.Errorf("upstream saw groups %q, want LDAP's analysts and engineering", h.Get("X-Seen-Groups"))
				}
				return nil
			},
		},
		{
			key: modeMintedWarm, title: "upstream_token minted, warm",
			goal: warmGoal, warm: warmGroups,
			handler: keyBlock("RSA256", "signing_key "+e.dir+"/gateway_rsa.pem", "upstream_token minted"),
			expect: func(sent string, h http.Header) error {
				if err := expectIdentity(h, "alice", "analysts,data", ""); err != nil {
					return err
				}
				return expectMinted(sent, h.Get("X-Seen-Authorization"))
			},
		},
	}
	if e.ldap != nil {
		l := e.ldap
		for _, m := range modes {
			if m.key == modeLDAPWarm {
				m.handler = keyBlock("RSA256", system,
					"ldap {",
					"\turl "+l.url,
					"\tbind_dn "+quoteCaddy(l.bindDN),
					"\tbind_password "+quoteCaddy(l.bindPassword),
					"\tbase_dn "+quoteCaddy(l.baseDN),
					"}")
			}
		}
	}
	return modes
}

// expectIdentity checks the upstream's echo of X-Okera-User, X-Okera-Groups
// and Authorization; an empty groups or auth is not checked.
func expectIdentity(h http.Header, user, groups, auth string) error {
	if got := h.Get("X-Seen-User"); got != user {
		return fmt.Errorf("upstream saw user %q, want %q", got, user)
	}
	if groups != "" && h.Get("X-Seen-Groups") != groups {
		return fmt.Errorf("upstream saw groups %q, want %q", h.Get("X-Seen-Groups"), groups)
	}
	if auth != "" && h.Get("X-Seen-Authorization") != auth {
		return fmt.Errorf("upstream saw another Authorization than expected (%.20q...)", h.Get("X-Seen-Authorization"))
	}
	return nil
}

// expectMinted checks that the upstream got a token minted by the gateway,
// not the caller's.
func expectMinted(sent, got string) error {
	tok, ok := strings.CutPrefix(got, "Bearer ")
	if !ok || got == sent {
		return fmt.Errorf("upstream did not get a minted bearer token")
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return fmt.Errorf("upstream's bearer is not a compact JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	var c struct {
		Iss string `json:"iss"`
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	if c.Iss != "caddy-okera-auth" || c.Sub != "alice" {
		return fmt.Errorf("minted token has iss %q sub %q", c.Iss, c.Sub)
	}
	return nil
}

// sanity makes sure a front end does what its name says before it is
// measured: a token gets through with the right identity upstream, and (for
// okera_auth) a request without a token does not.
func (m *mode) sanity(auth string) error {
	do := func(auth string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+m.gw.addr+"/", nil)
		req.Header.Set("X-Bench-Echo", "1")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := adminClient.Do(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, nil
	}
	resp, err := do(auth)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("a valid token got %s", resp.Status)
	}
	if err := m.expect(auth, resp.Header); err != nil {
		return err
	}
	if m.handler == "" {
		return nil
	}
	resp, err = do("")
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("a request without a token got %s, want 401", resp.Status)
	}
	return nil
}
