package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/okeragate/caddy-okera-auth/internal/slapdtest"
)

// The group resolution suite (README "Groups") runs the real Caddy against a real
// OpenLDAP slapd (internal/slapdtest, which counts the searches the server
// received from its log) and a programmable group endpoint. slapdtest is a
// test harness, not the gateway's code, so the suite stays black-box.

// groupsPeople is where the fixture's users live.
const groupsPeople = "ou=people," + slapdtest.Suffix

// groupsLDIF adds the users and groups this suite needs to slapdtest's
// fixture (alice: Engineering, Analysts; bob: no group; carol: Many-00..29;
// eve*)(uid=*: Meta; back\slash: Backslash):
//
//	norma       Data-Science, Ops, OPS (another entry, in ou=legacy), "R&D, Europe"
//	crowd       Crowd
//	dave        Catalog-Admins
//	frank       no group
//	john smith  Smiths (look-alikes: "john  smith", "john\u00a0smith")
//	chess       Chess Club, whose owner added "cn: Admins", and ou=Board,
//	            whose cn values are Board and Admins
func groupsLDIF() string {
	var b strings.Builder
	person := func(uid string) string {
		dn := "uid=" + uid + "," + groupsPeople
		fmt.Fprintf(&b, "dn: %s\nobjectClass: inetOrgPerson\ncn: %s\nsn: %s\nuid: %s\n\n", dn, uid, uid, uid)
		return dn
	}
	group := func(dn, cn string, members ...string) {
		fmt.Fprintf(&b, "dn: %s\nobjectClass: groupOfNames\ncn: %s\n", dn, cn)
		for _, m := range members {
			fmt.Fprintf(&b, "member: %s\n", m)
		}
		b.WriteString("\n")
	}
	groups := "ou=groups," + slapdtest.Suffix
	norma := person("norma")
	crowd := person("crowd")
	dave := person("dave")
	person("frank")
	fmt.Fprintf(&b, "dn: ou=legacy,%s\nobjectClass: organizationalUnit\nou: legacy\n\n", groups)
	group("cn=Data-Science,"+groups, "Data-Science", norma)
	group("cn=Ops,"+groups, "Ops", norma)
	group("cn=OPS,ou=legacy,"+groups, "OPS", norma)
	group(`cn=R&D\2C Europe,`+groups, "R&D, Europe", norma)
	group("cn=Crowd,"+groups, "Crowd", crowd)
	group("cn=Catalog-Admins,"+groups, "Catalog-Admins", dave)
	group("cn=Smiths,"+groups, "Smiths", person("john smith"))
	chess := person("chess")
	fmt.Fprintf(&b, "dn: cn=Chess Club,%s\nobjectClass: groupOfNames\ncn: Chess Club\ncn: Admins\nmember: %s\n\n", groups, chess)
	fmt.Fprintf(&b, "dn: ou=Board,%s\nobjectClass: groupOfNames\nou: Board\ncn: Board\ncn: Admins\nmember: %s\n\n", groups, chess)
	return b.String()
}

// startSlapd starts a directory with the suite's fixture. Caddy is looked
// for first, so a machine without it skips before slapd is started.
func startSlapd(t testing.TB, tls bool) *slapdtest.Server {
	t.Helper()
	caddyBinary(t)
	return slapdtest.New(t, slapdtest.Options{TLS: tls, ExtraLDIF: groupsLDIF()})
}

// ldapBlock is an okera_auth `ldap { }` block for the server at url, bound
// as the fixture's service account, with extra lines inside.
func ldapBlock(s *slapdtest.Server, url string, extra ...string) string {
	return ldapBlockPassword(url, s.BindPassword, extra...)
}

// ldapBlockPassword is an `ldap { }` block for the fixture's service
// account and base DN at url, with bind_password written as given (a
// literal or a placeholder).
func ldapBlockPassword(url, password string, extra ...string) string {
	return fmt.Sprintf("ldap {\n\turl %s\n\tbind_dn %q\n\tbind_password %s\n\tbase_dn %q\n%s}\n",
		url, slapdtest.RootDN, password, slapdtest.Suffix, indent(strings.Join(extra, "\n"), "\t"))
}

// groupsAuth is an okera_auth body: key A, the system token, and lines.
func groupsAuth(k keyFiles, lines ...string) string {
	return fmt.Sprintf("public_key %s\nsystem_token %s\n%s", k.A, k.SystemToken, strings.Join(lines, "\n"))
}

// userToken is a token for sub signed by key A. Without groups it has no
// groups claim at all, so the claim resolver has no answer and the next
// resolver is asked.
func userToken(t testing.TB, sub string, groups ...string) string {
	t.Helper()
	return sign(t, rsaKey(t, keyA), jwa.RS512, userClaims(sub, groups...))
}

// userSearches is how many user searches for uid the directory received;
// filterValue is the uid as slapd logs it (RFC 4515-escaped).
func userSearches(s *slapdtest.Server, filterValue string) int {
	return s.SearchCount("(uid=" + filterValue + ")")
}

// groupSearches is how many group searches for the member uid=<uid> the
// directory received.
func groupSearches(s *slapdtest.Server, uid string) int {
	return s.SearchCount("(member=uid=" + uid + "," + groupsPeople + ")")
}

// assertGroups checks what the upstream got from a resolved request: the
// user, exactly one X-Okera-Groups holding want (in any order, no
// duplicates; LDAP does not promise an order), the same list in
// {http.auth.user.groups}, and the groups source placeholder.
func assertGroups(t testing.TB, rec recordedRequest, user, source string, want ...string) {
	t.Helper()
	if got := rec.Header.Values("X-Okera-User"); len(got) != 1 || got[0] != user {
		t.Errorf("upstream X-Okera-User = %q, want [%q]", got, user)
	}
	values, present := rec.Header["X-Okera-Groups"]
	if !present || len(values) != 1 {
		t.Fatalf("upstream X-Okera-Groups = %q (present %v), want one value", values, present)
	}
	var got []string
	if values[0] != "" {
		got = strings.Split(values[0], ",")
	}
	sortedGot := slices.Sorted(slices.Values(got))
	sortedWant := slices.Sorted(slices.Values(want))
	if !slices.Equal(sortedGot, sortedWant) || len(slices.Compact(slices.Clone(sortedGot))) != len(got) {
		t.Errorf("upstream X-Okera-Groups = %q, want the groups %q (any order, each once)", values[0], want)
	}
	if p := rec.Header.Get("X-Test-User-Groups"); p != values[0] {
		t.Errorf("{http.auth.user.groups} = %q, X-Okera-Groups = %q: they must agree", p, values[0])
	}
	if got := rec.Header.Get("X-Test-Groups-Source"); got != source {
		t.Errorf("{http.auth.okera.groups_source} = %q, want %q", got, source)
	}
}

// assertSystemToken: with the default upstream_token, the upstream gets the
// system token and never the caller's token (README "Toward the upstream").
func assertSystemToken(t testing.TB, rec recordedRequest, k keyFiles, callerToken string) {
	t.Helper()
	if got := rec.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+k.System {
		t.Errorf("upstream Authorization = %q, want the system token", got)
	}
	assertTokenAbsent(t, rec, callerToken)
}

// since returns the requests the upstream received after the first n.
func (u *upstream) since(n int) []recordedRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]recordedRequest(nil), u.reqs[n:]...)
}

// endpointReply is what the group endpoint answers for a user.
type endpointReply struct {
	Status int
	Body   string
	Delay  time.Duration
}

// endpointCall is one call the group endpoint received.
type endpointCall struct {
	Method        string
	RequestURI    string // as sent: the user's path escaping is visible here
	User          string // the last path segment, unescaped
	Accept        string
	Authorization []string
}

// groupsEndpointPath is the base path the gateway is configured with; the
// user is appended to it as one path segment.
const groupsEndpointPath = "/api/v1/groups"

// groupsEndpoint is a programmable stand-in for Okera's
// OKERA_GROUP_RESOLVER_URL: GET <base>/<user>, answered per user, 404 for
// users it was not told about.
type groupsEndpoint struct {
	srv     *httptest.Server
	mu      sync.Mutex
	replies map[string]endpointReply
	calls   []endpointCall
}

func startGroupsEndpoint(t testing.TB) *groupsEndpoint {
	t.Helper()
	e := &groupsEndpoint{replies: map[string]endpointReply{}}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *groupsEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	call := endpointCall{
		Method:        r.Method,
		RequestURI:    r.RequestURI,
		Accept:        r.Header.Get("Accept"),
		Authorization: r.Header.Values("Authorization"),
	}
	reply := endpointReply{Status: http.StatusBadRequest, Body: `{"error":"not a user URL"}`}
	if seg, ok := strings.CutPrefix(r.RequestURI, groupsEndpointPath+"/"); ok && !strings.ContainsAny(seg, "/?#") {
		if user, err := url.PathUnescape(seg); err == nil {
			call.User = user
			reply = endpointReply{Status: http.StatusNotFound, Body: `{"error":"no such user"}`}
		}
	}
	e.mu.Lock()
	e.calls = append(e.calls, call)
	if set, ok := e.replies[call.User]; ok && call.User != "" {
		reply = set
	}
	e.mu.Unlock()
	if reply.Delay > 0 {
		select {
		case <-time.After(reply.Delay):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(reply.Status)
	io.WriteString(w, reply.Body)
}

// URL is the base URL to configure as groups_endpoint.
func (e *groupsEndpoint) URL() string { return e.srv.URL + groupsEndpointPath }

// Reply sets what the endpoint answers for user from now on.
func (e *groupsEndpoint) Reply(user string, r endpointReply) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.replies[user] = r
}

// Calls are the calls made for user so far.
func (e *groupsEndpoint) Calls(user string) []endpointCall {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []endpointCall
	for _, c := range e.calls {
		if c.User == user {
			out = append(out, c)
		}
	}
	return out
}

// Total is how many calls the endpoint received, for any path.
func (e *groupsEndpoint) Total() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.calls)
}

// assertEndpointCalls checks how the gateway asked the group endpoint for
// user (README "Groups"): n calls, each GET <base>/<escapedUser> with Accept:
// application/json and the system token as bearer.
func assertEndpointCalls(t testing.TB, e *groupsEndpoint, user, escapedUser string, k keyFiles, n int) {
	t.Helper()
	calls := e.Calls(user)
	if len(calls) != n {
		t.Fatalf("the group endpoint got %d call(s) for %q, want %d", len(calls), user, n)
	}
	for _, c := range calls {
		if c.Method != http.MethodGet {
			t.Errorf("group endpoint method = %s, want GET", c.Method)
		}
		if want := groupsEndpointPath + "/" + escapedUser; c.RequestURI != want {
			t.Errorf("group endpoint request URI = %q, want %q", c.RequestURI, want)
		}
		if c.Accept != "application/json" {
			t.Errorf("group endpoint Accept = %q, want application/json", c.Accept)
		}
		if len(c.Authorization) != 1 || c.Authorization[0] != "Bearer "+k.System {
			t.Errorf("group endpoint Authorization = %q, want the system token as bearer", c.Authorization)
		}
	}
}

// waitForLog waits up to d for Caddy's output to hold every substring.
func waitForLog(p *caddyProc, d time.Duration, substrings ...string) bool {
	return waitUntil(d, func() bool {
		out := p.Output()
		for _, s := range substrings {
			if !strings.Contains(out, s) {
				return false
			}
		}
		return true
	})
}
