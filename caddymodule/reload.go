package caddymodule

import (
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/okeragate/caddy-okera-auth/keyfile"
	"github.com/okeragate/caddy-okera-auth/validator"
)

// DefaultFileCheckInterval is how often watched files (public keys, the signing
// key, the system token, okera_jwks keys) are checked for changes. README
// "Toward the upstream" asks for a replaced file to take effect within 30 s.
const DefaultFileCheckInterval = 5 * time.Second

// maxWatchedFileSize bounds what is read of a watched file: keys and tokens
// are a few kilobytes.
const maxWatchedFileSize = 1 << 20

// racyWindow: a file whose mtime is this close to the moment it was read
// may be written again within the file system's timestamp granularity
// without its stamp changing, so its content is compared on the next check
// too (git's "racy clean" rule).
const racyWindow = 2 * time.Second

// fileWatcher re-reads files when they change, without a Caddy reload. It
// polls: a file is read again when its size, mtime or identity (device and
// inode: an atomic rename replaces it) changed, and applied when its
// content changed. Polling sees atomic renames, in-place writes and
// replacements through symlinks (Kubernetes secrets) alike, with no
// inotify limits. A file that cannot be read or no longer parses leaves the
// previous value in force and is reported once, naming the file.
type fileWatcher struct {
	interval time.Duration
	logger   *zap.Logger

	mu    sync.Mutex // guards files and serialises checks and applies
	files []*watchedFile
	hooks []func(now time.Time) // run after each check

	startOnce sync.Once
	stopOnce  sync.Once
	stop      chan struct{}
	done      chan struct{}
}

// watchedFile is one file and what to do with its new content.
type watchedFile struct {
	name    string // as configured, for logs
	path    string // resolved
	what    string // "public key", "signing key", ... for logs
	info    os.FileInfo
	sum     [32]byte
	racy    bool
	apply   func(data []byte) error
	lastErr string
}

func newFileWatcher(interval time.Duration, logger *zap.Logger) *fileWatcher {
	if interval <= 0 {
		interval = DefaultFileCheckInterval
	}
	return &fileWatcher{interval: interval, logger: logger, stop: make(chan struct{}), done: make(chan struct{})}
}

// watch reads the file, applies its content, and keeps watching it. The
// first read's error is returned: at start-up a bad file is fatal.
func (w *fileWatcher) watch(name, what string, apply func(data []byte) error) error {
	path, err := keyfile.ResolvePath(name)
	if err != nil {
		return err
	}
	f := &watchedFile{name: name, path: path, what: what, apply: apply}
	w.mu.Lock()
	defer w.mu.Unlock()
	// Stat before reading: a replacement between the two is then seen
	// as a change on the next check, never missed.
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	data, err := readBounded(path)
	if err != nil {
		return err
	}
	if err := apply(data); err != nil {
		return err
	}
	f.info, f.sum = info, sha256.Sum256(data)
	f.racy = time.Since(info.ModTime()) < racyWindow
	w.files = append(w.files, f)
	w.startOnce.Do(func() { go w.run() })
	return nil
}

// onCheck adds a function run after every check (expiry warnings).
func (w *fileWatcher) onCheck(hook func(now time.Time)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hooks = append(w.hooks, hook)
	w.startOnce.Do(func() { go w.run() })
}

func (w *fileWatcher) run() {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case now := <-t.C:
			w.check(now)
		}
	}
}

// close stops the polling goroutine, if one was started, and waits for it.
func (w *fileWatcher) close() {
	w.stopOnce.Do(func() { close(w.stop) })
	started := true
	w.startOnce.Do(func() { started = false })
	if started {
		<-w.done
	}
}

// check looks at every file once.
func (w *fileWatcher) check(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.files {
		w.checkFile(f)
	}
	for _, hook := range w.hooks {
		hook(now)
	}
}

func (w *fileWatcher) checkFile(f *watchedFile) {
	info, err := os.Stat(f.path)
	if err != nil {
		w.failed(f, fmt.Errorf("cannot read the %s file: %w", f.what, err))
		return
	}
	if !f.racy && sameStamp(f.info, info) {
		return
	}
	readAt := time.Now()
	data, err := readBounded(f.path)
	if err != nil {
		w.failed(f, fmt.Errorf("cannot read the %s file: %w", f.what, err))
		return
	}
	f.info = info
	f.racy = readAt.Sub(info.ModTime()) < racyWindow
	sum := sha256.Sum256(data)
	if sum == f.sum {
		return // touched, or replaced by the same content
	}
	f.sum = sum // a broken file is reported once, not on every check
	if err := f.apply(data); err != nil {
		w.failed(f, fmt.Errorf("the new %s file is not usable: %w", f.what, err))
		return
	}
	f.lastErr = ""
	w.logger.Info("reloaded "+f.what, zap.String("file", f.name))
}

// failed logs a problem with a file once, until it changes.
func (w *fileWatcher) failed(f *watchedFile, err error) {
	if msg := err.Error(); msg != f.lastErr {
		f.lastErr = msg
		w.logger.Error("keeping the previous "+f.what+": "+msg, zap.String("file", f.name))
	}
}

func sameStamp(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && a.Mode() == b.Mode()
}

func readBounded(path string) ([]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, maxWatchedFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxWatchedFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxWatchedFileSize)
	}
	return data, nil
}

// keyring is the okera_auth handler's file-backed key material: the public
// keys and the signing key (whose public half is trusted too), kept in the
// key validator's static set and re-read when their files change; the
// signer built on the signing key; the system token file. Files are checked
// by one watcher, stopped by close.
type keyring struct {
	logger  *zap.Logger
	watcher *fileWatcher

	mu         sync.Mutex // guards the fields below
	publicCfg  []PublicKey
	publicAlgs []string
	publics    []*rsa.PublicKey
	signing    *rsa.PublicKey
	signingCfg string // path, the key's ID in the validator
	signingAlg string
	kv         *validator.KeyValidator

	signer signerRef
	// onSigner runs after a new signing key is in force (outside mu).
	onSigner []func()
	closers  []func()
}

func newKeyring(interval time.Duration, logger *zap.Logger) *keyring {
	return &keyring{logger: logger, watcher: newFileWatcher(interval, logger)}
}

// close stops what the keyring started, newest first.
func (k *keyring) close() {
	k.watcher.close()
	for i := len(k.closers) - 1; i >= 0; i-- {
		k.closers[i]()
	}
	k.closers = nil
}

// loadPublicKeys reads the public_key files and watches them.
func (k *keyring) loadPublicKeys(keys []PublicKey) error {
	algs := make([]string, len(keys))
	for i, pk := range keys {
		alg, err := keyfile.ParseAlgorithm(pk.Algorithm)
		if err != nil {
			return fmt.Errorf("public_key %s: %w", pk.Path, err)
		}
		algs[i] = alg
	}
	k.mu.Lock()
	k.publicCfg = keys
	k.publicAlgs = algs
	k.publics = make([]*rsa.PublicKey, len(keys))
	k.mu.Unlock()
	for i, pk := range keys {
		err := k.watcher.watch(pk.Path, "public key", func(data []byte) error {
			pub, err := keyfile.ParsePublicKeyPEM(data)
			if err != nil {
				return err
			}
			k.mu.Lock()
			defer k.mu.Unlock()
			k.publics[i] = pub
			k.installLocked()
			return nil
		})
		if err != nil {
			return fmt.Errorf("public_key: reading public key %q: %w", pk.Path, err)
		}
	}
	return nil
}

// keyValidator builds the key validator over the current static keys, or
// returns nil when there are none and withSources is false.
func (k *keyring) keyValidator(withSources bool) *validator.KeyValidator {
	k.mu.Lock()
	defer k.mu.Unlock()
	keys := k.staticKeysLocked()
	if len(keys) == 0 && !withSources {
		return nil
	}
	k.kv = validator.NewKeyValidator(keys)
	return k.kv
}

// installLocked puts the current static keys into the validator, once it
// exists. SetKeys keeps the cached verifications of unchanged keys and drops
// those of removed ones at once.
func (k *keyring) installLocked() {
	if k.kv != nil {
		k.kv.SetKeys(k.staticKeysLocked())
	}
}

func (k *keyring) staticKeysLocked() []validator.Key {
	keys := make([]validator.Key, 0, len(k.publics)+1)
	for i, pub := range k.publics {
		if pub != nil {
			keys = append(keys, validator.Key{ID: k.publicCfg[i].Path, Algorithm: k.publicAlgs[i], Public: pub, Source: validator.ByPublicKey})
		}
	}
	if k.signing != nil {
		keys = append(keys, validator.Key{ID: k.signingCfg, Algorithm: k.signingAlg, Public: k.signing, Source: validator.ByPublicKey})
	}
	return keys
}

// watchSystemToken keeps st in step with its file. A file that no longer
// holds a usable token (not a JWT, no sub, expired) leaves the previous
// token in force. Each new token's expiry is checked as at start-up, and
// every check warns once when the token in force comes within 24 hours of
// its expiry.
func (k *keyring) watchSystemToken(path string, st *systemToken, changed func(*systemTokenValue)) error {
	// warned is the token last warned about (loadSystemToken warned about
	// the first one if it was due); only the watcher's goroutine uses it.
	var warned *systemTokenValue
	if cur := st.v.Load(); expiresSoon(cur, time.Now()) {
		warned = cur
	}
	err := k.watcher.watch(path, "system token", func(data []byte) error {
		val, err := parseSystemToken(path, data, time.Now())
		if err != nil {
			return err
		}
		if cur := st.v.Load(); cur != nil && cur.token == val.token {
			return nil
		}
		st.replace(val)
		now := time.Now()
		if expiresSoon(val, now) {
			warned = val
		}
		warnSystemToken(path, val, now, k.logger)
		if changed != nil {
			changed(val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	k.watcher.onCheck(func(now time.Time) {
		if cur := st.v.Load(); cur != warned && expiresSoon(cur, now) {
			warned = cur
			warnSystemToken(path, cur, now, k.logger)
		}
	})
	return nil
}

// expiresSoon reports whether a token expires within expiryWarning.
func expiresSoon(v *systemTokenValue, now time.Time) bool {
	return v != nil && !v.expires.IsZero() && v.expires.Sub(now) < expiryWarning
}
