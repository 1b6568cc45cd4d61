package caddymodule

import (
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/zap"

	"github.com/okeragate/caddy-okera-auth/keyfile"
	"github.com/okeragate/caddy-okera-auth/mint"
)

func init() {
	caddy.RegisterModule(JWKSHandler{})
	httpcaddyfile.RegisterHandlerDirective("okera_jwks", parseOkeraJWKS)
	// Before basic_auth, and so before okera_auth: the key set is public
	// (verifiers fetch it without a token), so an operator can serve it
	// from the site that okera_auth protects without a matcher dance.
	httpcaddyfile.RegisterDirectiveOrder("okera_jwks", httpcaddyfile.Before, "basic_auth")
}

// JWKS responses: the media type of RFC 7517 section 8.5, and a cache life
// that lets verifiers poll cheaply while a rotated key still spreads within
// minutes.
const (
	jwksContentType  = "application/jwk-set+json"
	jwksCacheControl = "public, max-age=300"
)

// JWKSHandler answers with the public half of the gateway's key(s) as a JWK
// Set, so upstreams can verify the tokens the gateway mints. Each key has
// its RFC 7638 thumbprint as kid (the kid of the gateway's tokens), its alg
// and "use": "sig". The set is rebuilt when a key file changes. It answers
// GET and HEAD; other methods get 405.
type JWKSHandler struct {
	// Keys are the key files to publish: private keys (only the public half
	// is published) or public keys, as paths or file:// URIs.
	Keys []JWKSKey `json:"keys,omitempty"`

	// FileCheckInterval is how often the key files are checked for changes.
	// Default 5s. JSON only.
	FileCheckInterval caddy.Duration `json:"file_check_interval,omitempty"`

	logger    *zap.Logger
	watcher   *fileWatcher
	published *publishedKeys
}

// publishedKeys is the handler's current key set.
type publishedKeys struct {
	mu   sync.Mutex // guards pubs during a rebuild
	pubs []*rsa.PublicKey
	algs []string
	body atomic.Pointer[jwksBody]
}

// JWKSKey is one published key.
type JWKSKey struct {
	// Path is a file path or file:// URI of a PEM private or public RSA key.
	Path string `json:"path"`
	// Algorithm is the key's alg: RSA256 or RSA512 (also spelled RS256/RS512).
	// Default RSA512.
	Algorithm string `json:"algorithm,omitempty"`
}

type jwksBody struct {
	data   []byte
	length string
}

// CaddyModule returns the Caddy module information.
func (JWKSHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.okera_jwks",
		New: func() caddy.Module { return new(JWKSHandler) },
	}
}

// Provision reads the key files, builds the set, and watches the files.
func (j *JWKSHandler) Provision(ctx caddy.Context) error {
	j.logger = ctx.Logger()
	if len(j.Keys) == 0 {
		return errors.New("okera_jwks needs at least one key file")
	}
	j.watcher = newFileWatcher(durationOrDefault(j.FileCheckInterval, DefaultFileCheckInterval), j.logger)
	p := &publishedKeys{pubs: make([]*rsa.PublicKey, len(j.Keys)), algs: make([]string, len(j.Keys))}
	j.published = p
	for i, k := range j.Keys {
		alg, err := keyfile.ParseAlgorithm(k.Algorithm)
		if err != nil {
			return fmt.Errorf("okera_jwks %s: %w", k.Path, err)
		}
		p.algs[i] = alg
		err = j.watcher.watch(k.Path, "published key", func(data []byte) error {
			pub, err := keyfile.ParsePublicKeyFromAnyPEM(data)
			if err != nil {
				return err
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			prev := p.pubs[i]
			p.pubs[i] = pub
			if err := p.rebuildLocked(); err != nil {
				p.pubs[i] = prev
				return err
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("okera_jwks: reading key %q: %w", k.Path, err)
		}
	}
	return nil
}

// rebuildLocked encodes the set once; requests only copy the bytes. A key
// listed twice (say, the private key and its public key file) is published
// once.
func (p *publishedKeys) rebuildLocked() error {
	set := jwk.NewSet()
	seen := map[string]bool{}
	for i, pub := range p.pubs {
		if pub == nil {
			continue // not read yet (provisioning)
		}
		kid, err := mint.Thumbprint(pub)
		if err != nil {
			return err
		}
		if seen[kid+p.algs[i]] {
			continue
		}
		seen[kid+p.algs[i]] = true
		key, err := jwk.FromRaw(pub)
		if err != nil {
			return fmt.Errorf("encoding the key as a JWK: %w", err)
		}
		for name, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: jwa.SignatureAlgorithm(p.algs[i]), jwk.KeyUsageKey: jwk.ForSignature} {
			if err := key.Set(name, v); err != nil {
				return fmt.Errorf("setting %s: %w", name, err)
			}
		}
		if err := set.AddKey(key); err != nil {
			return err
		}
	}
	data, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("encoding the JWK Set: %w", err)
	}
	p.body.Store(&jwksBody{data: data, length: strconv.Itoa(len(data))})
	return nil
}

// Validate checks the configuration.
func (j *JWKSHandler) Validate() error {
	if len(j.Keys) == 0 {
		return errors.New("okera_jwks needs at least one key file")
	}
	for _, k := range j.Keys {
		if k.Path == "" {
			return errors.New("okera_jwks: a key without a path")
		}
		if _, err := keyfile.ParseAlgorithm(k.Algorithm); err != nil {
			return fmt.Errorf("okera_jwks %s: %w", k.Path, err)
		}
	}
	return nil
}

// Cleanup stops the file watcher.
func (j *JWKSHandler) Cleanup() error {
	if j.watcher != nil {
		j.watcher.close()
	}
	return nil
}

// ServeHTTP answers with the key set; it never calls next.
func (j *JWKSHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("okera_jwks answers GET and HEAD, not %s", r.Method))
	}
	body := j.published.body.Load()
	hdr := w.Header()
	hdr.Set("Content-Type", jwksContentType)
	hdr.Set("Cache-Control", jwksCacheControl)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Length", body.length)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write(body.data)
	return err
}

func parseOkeraJWKS(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	j := new(JWKSHandler)
	if err := j.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return j, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	okera_jwks [<matcher>] <key path|file://uri> [RSA256|RSA512] [<key> [<alg>]]...
//
// An algorithm word after a path sets that key's alg (default RSA512). A
// first argument starting with / is read by Caddy as a path matcher: with an
// absolute key path and no matcher, write a matcher first (* for every
// request) or use a file:// URI.
func (j *JWKSHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	for d.NextArg() {
		arg := d.Val()
		if len(j.Keys) > 0 && j.Keys[len(j.Keys)-1].Algorithm == "" {
			if _, err := keyfile.ParseAlgorithm(arg); err == nil {
				j.Keys[len(j.Keys)-1].Algorithm = arg
				continue
			}
		}
		j.Keys = append(j.Keys, JWKSKey{Path: arg})
	}
	if len(j.Keys) == 0 {
		return d.Err("okera_jwks needs at least one key file (with an absolute path and no matcher, Caddy reads the path as a matcher: add one, such as *, before it, or use a file:// URI)")
	}
	for d.NextBlock(0) {
		return d.Errf("unrecognized okera_jwks subdirective '%s'", d.Val())
	}
	return nil
}

// Interface guards
var (
	_ caddy.Module                = (*JWKSHandler)(nil)
	_ caddy.Provisioner           = (*JWKSHandler)(nil)
	_ caddy.Validator             = (*JWKSHandler)(nil)
	_ caddy.CleanerUpper          = (*JWKSHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*JWKSHandler)(nil)
	_ caddyfile.Unmarshaler       = (*JWKSHandler)(nil)
)
