package resolver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"
)

// Defaults shared by the LDAP and endpoint resolvers (README "Groups").
const (
	// DefaultTimeout bounds each LDAP operation and each endpoint call.
	DefaultTimeout = 5 * time.Second
	// DefaultCacheTTL is how long an answer is kept when the operator says
	// nothing; the config structs treat a zero CacheTTL as "no caching", so
	// the caller applies this default.
	DefaultCacheTTL = 5 * time.Minute
	// DefaultCacheSize is how many users' answers a resolver keeps.
	DefaultCacheSize = 10000
)

// Defaults of LDAPConfig's zero values.
const (
	// DefaultUserFilter finds a person by uid; {0} is the escaped user.
	DefaultUserFilter = "(&(objectClass=person)(uid={0}))"
	// DefaultGroupFilter selects groups whose members are listed by DN.
	DefaultGroupFilter = "(objectClass=groupOfNames)"
	// DefaultMemberAttribute holds a group's member DNs.
	DefaultMemberAttribute = "member"
	// DefaultGroupNameAttribute holds a group's name.
	DefaultGroupNameAttribute = "cn"
	// DefaultUserAttribute is the user entry's attribute that must name the
	// user (OpenLDAP's uid; Active Directory's is sAMAccountName).
	DefaultUserAttribute = "uid"
	// DefaultLDAPPoolSize is how many connections to the directory may be
	// open at once.
	DefaultLDAPPoolSize = 4
	// DefaultLDAPSizeLimit is the most groups one user may be in; a user in
	// more is an error rather than a silently truncated list.
	DefaultLDAPSizeLimit = 1000
)

// How the user entry's UserAttribute must equal the user.
const (
	// UserMatchExact: byte for byte, the default.
	UserMatchExact = "exact"
	// UserMatchASCIICase: equal once ASCII letters A-Z are folded, and
	// nothing else, for directories such as AD whose names are
	// case-insensitive. Unicode case folding is never applied: it would
	// let ALİCE (U+0130) or the Kelvin sign stand for ASCII letters.
	UserMatchASCIICase = "ascii_case"
)

// userPlaceholder in UserFilter stands for the RFC 4515-escaped user.
const userPlaceholder = "{0}"

// LDAPConfig configures an LDAPResolver. Zero values of Timeout, PoolSize,
// CacheSize, SizeLimit, the filters and the attribute names take the
// defaults above; a zero CacheTTL means no caching (start from
// DefaultLDAPConfig for the README's 5 minutes).
type LDAPConfig struct {
	// URL is ldap://host[:389] or ldaps://host[:636].
	URL string
	// StartTLS upgrades an ldap:// connection with the StartTLS operation
	// before binding.
	StartTLS bool
	// CAFile is a PEM file of the CAs trusted for the server's certificate,
	// instead of the system's; it needs ldaps:// or StartTLS.
	CAFile string
	// BindDN and BindPassword are the service account; both are required.
	BindDN       string
	BindPassword string
	// BaseDN is where users and groups are searched (whole subtree).
	BaseDN string
	// UserFilter finds the user's entry; {0} is replaced by the escaped user.
	UserFilter string
	// GroupFilter selects group entries; it is and-ed with the membership test.
	GroupFilter string
	// MemberAttribute is the group attribute that holds members' DNs.
	MemberAttribute string
	// GroupNameAttribute is the group attribute that names a group. An
	// entry with several values of it is named by its RDN's value when the
	// RDN uses this attribute, and skipped otherwise: a group owner must not
	// be able to add the name "admins" to an unrelated group.
	GroupNameAttribute string
	// UserAttribute is the user entry's attribute that must hold the user's
	// name (see UserMatch); the entry is "no answer" otherwise. Directories
	// match filters loosely (case, width, look-alike letters, repeated
	// spaces), so without this check ａｌｉｃｅ or "john  smith" would be
	// handed alice's or john smith's groups (README "Group resolution").
	UserAttribute string
	// UserMatch is UserMatchExact (the default) or UserMatchASCIICase.
	UserMatch string
	// Timeout bounds each operation: dial, TLS handshake, bind, each search.
	Timeout time.Duration
	// CacheTTL is how long an answer for a user is kept; zero keeps none.
	CacheTTL time.Duration
	// PoolSize is the most connections open to the server at once.
	PoolSize int
	// CacheSize is the most users whose answers are kept.
	CacheSize int
	// SizeLimit is the most groups one user may be in.
	SizeLimit int
	// CacheObserver, when not nil, is told whether each lookup was answered
	// from the cache (for metrics). It must be cheap and concurrency-safe.
	CacheObserver func(hit bool)
}

// DefaultLDAPConfig is an LDAPConfig with every default the README gives filled
// in, CacheTTL included; the caller adds the server and the account.
func DefaultLDAPConfig() LDAPConfig {
	return LDAPConfig{
		UserFilter:         DefaultUserFilter,
		GroupFilter:        DefaultGroupFilter,
		MemberAttribute:    DefaultMemberAttribute,
		GroupNameAttribute: DefaultGroupNameAttribute,
		UserAttribute:      DefaultUserAttribute,
		UserMatch:          UserMatchExact,
		Timeout:            DefaultTimeout,
		CacheTTL:           DefaultCacheTTL,
		PoolSize:           DefaultLDAPPoolSize,
		CacheSize:          DefaultCacheSize,
		SizeLimit:          DefaultLDAPSizeLimit,
	}
}

// LDAPResolver finds a user's groups in an LDAP directory or Active
// Directory: the user's entry by UserFilter, then the groups that name that
// entry's DN in MemberAttribute. It holds a small pool of connections bound
// as the service account, and a per-user answer cache.
type LDAPResolver struct {
	cfg         LDAPConfig
	userFilter  string
	groupFilter string
	pool        *ldapPool
	answers     *answerCache[[]string]
	closed      atomic.Bool
	log         *zap.Logger
}

// attributeName is an attribute description of RFC 4512: a name with
// options, or an OID.
var attributeName = regexp.MustCompile(`^(?:[A-Za-z][A-Za-z0-9-]*(?:;[A-Za-z0-9-]+)*|[0-9]+(?:\.[0-9]+)+)$`)

// NewLDAPResolver checks cfg and builds the resolver. It never touches the
// network (Caddy's Provision must not wait on a directory that may be
// down); call Ping for a start-up check in the background.
func NewLDAPResolver(cfg LDAPConfig, logger *zap.Logger) (*LDAPResolver, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("ldap config: %w", err)
	}
	dialer, err := cfg.dialer()
	if err != nil {
		return nil, fmt.Errorf("ldap config: %w", err)
	}
	r := &LDAPResolver{
		cfg:         cfg,
		userFilter:  parenthesize(cfg.UserFilter),
		groupFilter: parenthesize(cfg.GroupFilter),
		log:         logger,
	}
	if err := r.checkFilters(); err != nil {
		return nil, fmt.Errorf("ldap config: %w", err)
	}
	// Only now, with nothing left to fail: the cache runs a goroutine.
	r.answers = newAnswerCache[[]string](cfg.CacheTTL, cfg.CacheSize, cfg.CacheObserver)
	r.pool = newLDAPPool(dialer, cfg.PoolSize, logger)
	return r, nil
}

func (c LDAPConfig) withDefaults() (LDAPConfig, error) {
	def := DefaultLDAPConfig()
	for _, f := range []struct {
		v   *string
		def string
	}{
		{&c.UserFilter, def.UserFilter},
		{&c.GroupFilter, def.GroupFilter},
		{&c.MemberAttribute, def.MemberAttribute},
		{&c.GroupNameAttribute, def.GroupNameAttribute},
		{&c.UserAttribute, def.UserAttribute},
		{&c.UserMatch, def.UserMatch},
	} {
		if strings.TrimSpace(*f.v) == "" {
			*f.v = f.def
		}
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"pool size", &c.PoolSize, def.PoolSize},
		{"cache size", &c.CacheSize, def.CacheSize},
		{"size limit", &c.SizeLimit, def.SizeLimit},
	} {
		switch {
		case *f.v < 0:
			return c, fmt.Errorf("%s %d is negative", f.name, *f.v)
		case *f.v == 0:
			*f.v = f.def
		}
	}
	switch {
	case c.Timeout < 0:
		return c, fmt.Errorf("timeout %s is negative", c.Timeout)
	case c.Timeout == 0:
		c.Timeout = def.Timeout
	}
	if c.CacheTTL < 0 {
		return c, fmt.Errorf("cache_ttl %s is negative", c.CacheTTL)
	}
	// No anonymous or unauthenticated bind (README "Groups"): a bind DN with an
	// empty password is an unauthenticated bind that many servers accept
	// as anonymous, which would quietly turn group lookups into guesses.
	if strings.TrimSpace(c.BindDN) == "" {
		return c, errors.New("bind_dn is required")
	}
	if _, err := ldap.ParseDN(c.BindDN); err != nil {
		return c, fmt.Errorf("bind_dn %q is not a DN: %w", c.BindDN, err)
	}
	if c.BindPassword == "" {
		return c, errors.New("bind_password is required and must not be empty")
	}
	if strings.TrimSpace(c.BaseDN) == "" {
		return c, errors.New("base_dn is required")
	}
	if _, err := ldap.ParseDN(c.BaseDN); err != nil {
		return c, fmt.Errorf("base_dn %q is not a DN: %w", c.BaseDN, err)
	}
	for _, a := range []struct{ name, value string }{
		{"member_attribute", c.MemberAttribute},
		{"group_name_attribute", c.GroupNameAttribute},
		{"user_attribute", c.UserAttribute},
	} {
		if !attributeName.MatchString(a.value) {
			return c, fmt.Errorf("%s %q is not an attribute name", a.name, a.value)
		}
	}
	if c.UserMatch != UserMatchExact && c.UserMatch != UserMatchASCIICase {
		return c, fmt.Errorf("user_match %q: must be %s or %s", c.UserMatch, UserMatchExact, UserMatchASCIICase)
	}
	return c, nil
}

// dialer checks the URL and TLS settings and returns how to connect.
func (c LDAPConfig) dialer() (ldapDialer, error) {
	d := ldapDialer{
		startTLS:     c.StartTLS,
		bindDN:       c.BindDN,
		bindPassword: c.BindPassword,
		timeout:      c.Timeout,
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return d, fmt.Errorf("url: %w", err)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "ldap" && scheme != "ldaps" {
		return d, fmt.Errorf("url %q: scheme must be ldap or ldaps", u.Redacted())
	}
	if u.Hostname() == "" {
		return d, fmt.Errorf("url %q has no host", u.Redacted())
	}
	if u.User != nil {
		return d, fmt.Errorf("url %q: put credentials in bind_dn and bind_password, not in the URL", u.Redacted())
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return d, fmt.Errorf("url %q: only scheme, host and port are used; put the base DN in base_dn", u.Redacted())
	}
	port := u.Port()
	if port == "" {
		port = ldap.DefaultLdapPort
		if scheme == "ldaps" {
			port = ldap.DefaultLdapsPort
		}
	}
	d.addr = net.JoinHostPort(u.Hostname(), port)
	d.ldaps = scheme == "ldaps"

	if d.ldaps && c.StartTLS {
		return d, errors.New("start_tls is for ldap:// URLs; ldaps:// is TLS already")
	}
	if !d.ldaps && !c.StartTLS {
		if c.CAFile != "" {
			// Trusting a CA implies TLS; ignoring it would send the bind
			// password in clear to a server the operator meant to verify.
			return d, errors.New("ca_file needs an ldaps:// URL or start_tls")
		}
		return d, nil
	}
	d.tlsConfig = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return d, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return d, fmt.Errorf("ca_file %s holds no PEM certificate", c.CAFile)
		}
		d.tlsConfig.RootCAs = pool
	}
	return d, nil
}

// parenthesize accepts a filter written without its outer parentheses, as
// operators often do (objectClass=person).
func parenthesize(filter string) string {
	filter = strings.TrimSpace(filter)
	if !strings.HasPrefix(filter, "(") {
		return "(" + filter + ")"
	}
	return filter
}

func (r *LDAPResolver) checkFilters() error {
	if !strings.Contains(r.userFilter, userPlaceholder) {
		return fmt.Errorf("user_filter %q has no %s for the user", r.cfg.UserFilter, userPlaceholder)
	}
	if _, err := ldap.CompileFilter(r.userSearchFilter("user")); err != nil {
		return fmt.Errorf("user_filter %q: %w", r.cfg.UserFilter, err)
	}
	// Compiled alone too: go-ldap's parser is lenient about parentheses in
	// values, so a broken group_filter can still make a valid-looking whole.
	if _, err := ldap.CompileFilter(r.groupFilter); err != nil {
		return fmt.Errorf("group_filter %q: %w", r.cfg.GroupFilter, err)
	}
	if _, err := ldap.CompileFilter(r.groupSearchFilter("uid=user,dc=example,dc=org")); err != nil {
		return fmt.Errorf("group_filter %q with member_attribute %q: %w", r.cfg.GroupFilter, r.cfg.MemberAttribute, err)
	}
	return nil
}

// userSearchFilter puts the user into the filter as an escaped assertion
// value, so a user named "*)(uid=*" matches only that literal name and
// cannot widen the search to every entry.
func (r *LDAPResolver) userSearchFilter(user string) string {
	return strings.ReplaceAll(r.userFilter, userPlaceholder, ldap.EscapeFilter(user))
}

// groupSearchFilter escapes the DN too: DNs may hold parentheses and stars.
func (r *LDAPResolver) groupSearchFilter(userDN string) string {
	return "(&" + r.groupFilter + "(" + r.cfg.MemberAttribute + "=" + ldap.EscapeFilter(userDN) + "))"
}

// Name implements Resolver.
func (r *LDAPResolver) Name() string { return SourceLDAP }

// Resolve implements Resolver. An unknown user is no answer (nil, nil); a
// known user in no group is an empty answer; a user filter that matches
// several entries is an error, since picking one could hand a user another
// person's groups. Answers are cached per user for CacheTTL; concurrent
// lookups of one user share one query.
func (r *LDAPResolver) Resolve(ctx context.Context, req Request) ([]string, error) {
	if r.closed.Load() {
		return nil, errLDAPClosed
	}
	if req.User == "" {
		return nil, nil
	}
	groups, err := r.answers.get(ctx, req.User, func(ctx context.Context) ([]string, error) {
		return r.lookup(ctx, req.User)
	})
	if err != nil {
		return nil, err
	}
	return slices.Clone(groups), nil
}

func (r *LDAPResolver) lookup(ctx context.Context, user string) ([]string, error) {
	var groups []string
	err := r.pool.do(ctx, func(c *ldapConn) error {
		var err error
		groups, err = r.query(ctx, c, user)
		return err
	})
	if err != nil {
		return nil, redact(err, r.cfg.BindPassword)
	}
	return groups, nil
}

func (r *LDAPResolver) query(ctx context.Context, c *ldapConn, user string) ([]string, error) {
	// Two entries are enough to know the filter is ambiguous.
	res, err := c.search(ctx, r.searchRequest(r.userSearchFilter(user), 2, r.cfg.UserAttribute))
	several := isSizeLimit(err) || (err == nil && len(res.Entries) > 1)
	switch {
	case several:
		return nil, fmt.Errorf("user %q: user_filter matches several entries under %s; it must match exactly one", user, r.cfg.BaseDN)
	case err != nil:
		return nil, fmt.Errorf("searching for user %q: %w", user, err)
	case len(res.Entries) == 0:
		return nil, nil
	}
	dn := res.Entries[0].DN
	if !r.namesUser(res.Entries[0], user) {
		if ce := r.log.Check(zap.DebugLevel, "the LDAP entry found does not name the user; no groups from LDAP"); ce != nil {
			ce.Write(zap.String("user", user), zap.String("dn", dn), zap.String("user_attribute", r.cfg.UserAttribute))
		}
		return nil, nil
	}

	res, err = c.search(ctx, r.searchRequest(r.groupSearchFilter(dn), r.cfg.SizeLimit, r.cfg.GroupNameAttribute))
	if err != nil {
		if isSizeLimit(err) {
			return nil, fmt.Errorf("user %q is in more than %d groups (the size limit)", user, r.cfg.SizeLimit)
		}
		return nil, fmt.Errorf("searching for the groups of %q: %w", dn, err)
	}
	groups := make([]string, 0, len(res.Entries))
	for _, e := range res.Entries {
		values := e.GetEqualFoldAttributeValues(r.cfg.GroupNameAttribute)
		if len(values) == 0 {
			continue
		}
		name, ok := groupName(e.DN, values, r.cfg.GroupNameAttribute)
		if !ok {
			r.log.Warn("skipped an LDAP group whose name attribute holds several values and whose RDN does not say which one names it",
				zap.String("group_dn", e.DN), zap.String("group_name_attribute", r.cfg.GroupNameAttribute))
			continue
		}
		groups = append(groups, name)
	}
	return groups, nil
}

// namesUser reports whether the user entry's UserAttribute holds the user:
// byte for byte, or with UserMatchASCIICase equal once A-Z are folded.
func (r *LDAPResolver) namesUser(e *ldap.Entry, user string) bool {
	for _, v := range e.GetEqualFoldAttributeValues(r.cfg.UserAttribute) {
		if v == user || (r.cfg.UserMatch == UserMatchASCIICase && asciiEqualFold(v, user)) {
			return true
		}
	}
	return false
}

// asciiEqualFold is strings.EqualFold restricted to ASCII letters: any
// other byte must be equal as it is.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// groupName is the name of the group entry at dn whose attr holds values
// (at least one): the one value, or, when it holds several, the value its
// RDN gives attr. ok is false when the RDN does not use attr or names none
// of the values.
func groupName(entryDN string, values []string, attr string) (string, bool) {
	if len(values) == 1 {
		return values[0], true
	}
	dn, err := ldap.ParseDN(entryDN)
	if err != nil || len(dn.RDNs) == 0 {
		return "", false
	}
	for _, a := range dn.RDNs[0].Attributes {
		if strings.EqualFold(a.Type, attr) && slices.Contains(values, a.Value) {
			return a.Value, true
		}
	}
	return "", false
}

// searchRequest limits the answer on both ends: the server is asked for at
// most limit entries and the client stops reading past them, so a server
// that ignores the limit cannot flood the gateway. Aliases are not
// dereferenced; continuation references in the answer are ignored, never
// followed.
func (r *LDAPResolver) searchRequest(filter string, limit int, attr string) *ldap.SearchRequest {
	timeLimit := int((r.cfg.Timeout + time.Second - 1) / time.Second)
	req := ldap.NewSearchRequest(r.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		limit, timeLimit, false, filter, []string{attr}, nil)
	req.EnforceSizeLimit = true
	return req
}

func isSizeLimit(err error) bool {
	return errors.Is(err, ldap.ErrSizeLimitExceeded) || ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded)
}

// Ping dials the server and binds once, so the caller can report a wrong
// URL, certificate or password soon after start-up instead of at the first
// request. The connection is kept in the pool.
func (r *LDAPResolver) Ping(ctx context.Context) error {
	if err := r.pool.ping(ctx); err != nil {
		return redact(err, r.cfg.BindPassword)
	}
	return nil
}

// Close closes every pooled connection and drops the cache; connections in
// use are closed as they come back. Resolve fails after Close.
func (r *LDAPResolver) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	r.pool.close()
	r.answers.close()
	return nil
}

// redactedError keeps a failure's text with a secret blanked out. It
// deliberately does not unwrap, since the wrapped error would still print
// the secret.
type redactedError struct{ msg string }

func (e *redactedError) Error() string { return e.msg }

// redact is a last line of defence: no LDAP library error is known to
// quote the bind password, but if one ever did, it would end up in Caddy's
// logs.
func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), secret, "[REDACTED]")}
}

var _ Resolver = (*LDAPResolver)(nil)
