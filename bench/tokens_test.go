//go:build bench || soak

package bench

import (
	"bufio"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// keyBits is the size of every key the bench uses: the gateway refuses
// smaller RSA keys, and 2048 bits is what the cold path is about.
const keyBits = 2048

// tokenLife is how long pre-signed tokens live. Pools on disk are reused
// while at least poolMinLife of it is left, so a run never meets an exp.
const (
	tokenLife   = 7 * 24 * time.Hour
	poolMinLife = 6 * time.Hour
)

// loadOrCreateKey returns the RSA key in path (PKCS#8 PEM), generating and
// writing it when the file is missing or unreadable. Keys are kept between
// runs only so that pre-signed token pools stay valid.
func loadOrCreateKey(path string) (*rsa.PrivateKey, error) {
	if data, err := os.ReadFile(path); err == nil {
		if block, _ := pem.Decode(data); block != nil {
			if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
				if rk, ok := k.(*rsa.PrivateKey); ok && rk.N.BitLen() == keyBits {
					return rk, nil
				}
			}
		}
	}
	key, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return nil, err
	}
	if err := writePrivateKey(path, key); err != nil {
		return nil, err
	}
	return key, nil
}

func writePrivateKey(path string, key *rsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func writePublicKey(path string, pub *rsa.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
}

// keyID names a public key in pool files, so a pool signed by another key
// is never loaded.
func keyID(pub *rsa.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8])
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// signer makes compact JWS tokens with one key and one algorithm. It is
// written out by hand (header, payload, PKCS#1 v1.5 signature) rather than
// through jwx so that the bench shares no code with the gateway it measures.
type signer struct {
	key  *rsa.PrivateKey
	alg  string // RS256 or RS512
	hash crypto.Hash
	head string // the encoded protected header
}

func newSigner(key *rsa.PrivateKey, alg string) signer {
	h := crypto.SHA256
	if alg == "RS512" {
		h = crypto.SHA512
	}
	head := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"` + alg + `","typ":"JWT"}`))
	return signer{key: key, alg: alg, hash: h, head: head}
}

func (s signer) sign(claims map[string]any) (string, error) {
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := s.head + "." + base64.RawURLEncoding.EncodeToString(body)
	d := s.hash.New()
	d.Write([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, s.hash, d.Sum(nil))
	if err != nil {
		return "", err
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// userClaims are the claims of a caller's token: sub alice, the groups when
// given (nil leaves the claim out, so LDAP answers), and a jti that makes
// each token distinct.
func userClaims(jti string, groups []string, now time.Time, life time.Duration) map[string]any {
	c := map[string]any{
		"sub": "alice",
		"iat": now.Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(life).Unix(),
		"jti": jti,
	}
	if groups != nil {
		c["groups"] = groups
	}
	return c
}

// benchGroups is the groups claim of the callers' tokens.
var benchGroups = []string{"analysts", "data"}

// signMany signs n tokens on every core, printing progress, and returns them
// in order. claims(i) gives the i-th token's claims.
func signMany(s signer, n int, claims func(i int) map[string]any, progress func(done, total int)) ([]string, error) {
	out := make([]string, n)
	var next atomic.Int64
	var done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	stop := make(chan struct{})
	ticker := time.NewTicker(5 * time.Second)
	defer ticker.Stop()
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-ticker.C:
				if progress != nil {
					progress(int(done.Load()), n)
				}
			}
		}
	}()
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				tok, err := s.sign(claims(i))
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				out[i] = tok
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	return out, firstErr
}

// poolHeader is the first line of a pool file.
const poolMagic = "#caddy-okera-auth-bench-pool v1"

// tokenPool is a list of distinct valid tokens of one algorithm, kept on
// disk between runs: 100 000 RSA-2048 signatures take minutes on two cores,
// and a gateway process that has never seen a token verifies it cold
// whether or not an earlier run's gateway saw it.
type tokenPool struct {
	alg    string
	path   string
	s      signer
	tokens []string // raw tokens
	exp    time.Time
	// loaded is how many tokens came from the file; signTime how long this
	// run spent signing the rest.
	loaded   int
	signTime time.Duration
}

func openPool(dir string, s signer) *tokenPool {
	p := &tokenPool{alg: s.alg, s: s, path: filepath.Join(dir, "tokens-"+s.alg+".txt")}
	p.load()
	return p
}

// load reads the pool file; a file of another key, a format it does not know
// or tokens too close to their exp are ignored (and later overwritten).
func (p *tokenPool) load() {
	f, err := os.Open(p.path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 64*1024)
	if !sc.Scan() {
		return
	}
	fields := strings.Fields(sc.Text())
	want := []string{poolMagic, "kid=" + keyID(&p.s.key.PublicKey), "alg=" + p.alg}
	if len(fields) != 5 || strings.Join(fields[:4], " ") != strings.Join(want, " ") || !strings.HasPrefix(fields[4], "exp=") {
		return
	}
	expUnix, err := strconv.ParseInt(strings.TrimPrefix(fields[4], "exp="), 10, 64)
	if err != nil || time.Until(time.Unix(expUnix, 0)) < poolMinLife {
		return
	}
	var toks []string
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			toks = append(toks, line)
		}
	}
	if sc.Err() != nil {
		return
	}
	p.tokens, p.exp, p.loaded = toks, time.Unix(expUnix, 0), len(toks)
}

// ensure makes the pool hold at least n tokens, signing the missing ones and
// rewriting the file.
func (p *tokenPool) ensure(n int, logf func(string, ...any)) error {
	if len(p.tokens) >= n {
		return nil
	}
	missing := n - len(p.tokens)
	now := time.Now()
	batch := make([]byte, 4)
	_, _ = rand.Read(batch)
	tag := hex.EncodeToString(batch)
	logf("signing %d %s tokens (RSA-%d) on %d cores; the pool is kept in %s for later runs",
		missing, p.alg, keyBits, runtime.NumCPU(), p.path)
	start := time.Now()
	fresh, err := signMany(p.s, missing, func(i int) map[string]any {
		return userClaims(fmt.Sprintf("%s-%s-%d", p.alg, tag, i), benchGroups, now, tokenLife)
	}, func(done, total int) {
		logf("  ... %d/%d %s tokens signed (%.0f/s)", done, total, p.alg, float64(done)/time.Since(start).Seconds())
	})
	if err != nil {
		return fmt.Errorf("signing %s tokens: %w", p.alg, err)
	}
	p.signTime += time.Since(start)
	logf("signed %d %s tokens in %s", missing, p.alg, time.Since(start).Round(100*time.Millisecond))
	exp := now.Add(tokenLife)
	if len(p.tokens) > 0 && p.exp.Before(exp) {
		exp = p.exp
	}
	p.tokens = append(p.tokens, fresh...)
	p.exp = exp
	var b strings.Builder
	b.Grow(len(p.tokens) * (len(p.tokens[0]) + 1))
	fmt.Fprintf(&b, "%s kid=%s alg=%s exp=%d\n", poolMagic, keyID(&p.s.key.PublicKey), p.alg, exp.Unix())
	for _, t := range p.tokens {
		b.WriteString(t)
		b.WriteByte('\n')
	}
	if err := os.MkdirAll(filepath.Dir(p.path), 0o700); err != nil {
		return err
	}
	return writeFileAtomic(p.path, []byte(b.String()), 0o600)
}

// bearers returns the Authorization values of tokens [lo, hi).
func (p *tokenPool) bearers(lo, hi int) ([]string, error) {
	if lo < 0 || hi > len(p.tokens) || lo > hi {
		return nil, errors.New("token pool range out of bounds")
	}
	out := make([]string, hi-lo)
	for i := range out {
		out[i] = "Bearer " + p.tokens[lo+i]
	}
	return out, nil
}
