package caddymodule

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/okeragate/caddy-okera-auth/keyfile"
	"github.com/okeragate/caddy-okera-auth/mint"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "okera-keygen",
		Usage: "[--dir .auth] [--alg RSA512] [--bits 2048] [--ttl 8760h] [--force]",
		Short: "Generates the gateway's key pair and a system token",
		Long: `
Generates what Okera's okctl generates for a cluster: an RSA key pair and a
system token signed by it.

  <dir>/id_rsa        the private key, PKCS#8 PEM, mode 0600 (signing_key)
  <dir>/id_rsa.pub    the public key, SPKI PEM (public_key)
  <dir>/system.token  a JWT with sub "okera" and groups ["root"], mode 0600
                      (system_token)

--dir    where to write the files (created with mode 0700); default .auth
--alg    the system token's algorithm, RSA256 or RSA512; default RSA512
--bits   the RSA key size, at least 2048; default 2048
--ttl    the system token's lifetime; default 8760h (a year)
--force  overwrite existing files; without it nothing is overwritten
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("dir", ".auth", "Directory to write id_rsa, id_rsa.pub and system.token to")
			cmd.Flags().String("alg", "RSA512", "Algorithm of the system token: RSA256 or RSA512")
			cmd.Flags().Int("bits", 2048, "RSA key size in bits (at least 2048)")
			cmd.Flags().Duration("ttl", 8760*time.Hour, "Lifetime of the system token")
			cmd.Flags().Bool("force", false, "Overwrite existing files")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdKeygen)
		},
	})
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "okera-token",
		Usage: "--key <private key> --sub <user> [--groups a,b] [--ttl 1h] [--alg RSA512] [--claim k=v]...",
		Short: "Prints a token signed with a private key",
		Long: `
Signs a JWT for a user with an RSA private key (PKCS#8 or PKCS#1 PEM) and
prints it. The token has sub, iss "caddy-okera-auth", iat, nbf, exp and,
with --groups, a groups list; its header carries the key's RFC 7638
thumbprint as kid.

--key     path or file:// URI of the private key (required)
--sub     the user (required)
--groups  comma-separated groups
--ttl     lifetime; default 1h
--alg     RSA256 or RSA512; default RSA512
--claim   an extra claim as name=value, repeatable; a value that parses as
          JSON (a number, true, a list) is used as such, any other value as
          a string. The registered claims sub, groups, iss, iat, nbf, exp,
          aud and jti cannot be set this way: naming one is a usage error
          (use --sub, --groups or --ttl).
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("key", "", "Private key to sign with")
			cmd.Flags().String("sub", "", "Subject (the user)")
			cmd.Flags().String("groups", "", "Comma-separated groups")
			cmd.Flags().Duration("ttl", time.Hour, "Token lifetime")
			cmd.Flags().String("alg", "RSA512", "Signing algorithm: RSA256 or RSA512")
			cmd.Flags().StringArray("claim", nil, "Extra claim name=value (repeatable)")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdToken)
		},
	})
}

// keygenOptions are the okera-keygen flags.
type keygenOptions struct {
	Dir   string
	Alg   string
	Bits  int
	TTL   time.Duration
	Force bool
}

func cmdKeygen(fl caddycmd.Flags) (int, error) {
	opts := keygenOptions{
		Dir:   fl.String("dir"),
		Alg:   fl.String("alg"),
		Bits:  fl.Int("bits"),
		TTL:   fl.Duration("ttl"),
		Force: fl.Bool("force"),
	}
	files, err := keygen(opts, time.Now())
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	for _, f := range files {
		fmt.Println(f)
	}
	return caddy.ExitCodeSuccess, nil
}

// keygen writes id_rsa, id_rsa.pub and system.token into opts.Dir and
// returns their paths.
func keygen(opts keygenOptions, now time.Time) ([]string, error) {
	alg, err := keyfile.ParseAlgorithm(opts.Alg)
	if err != nil {
		return nil, fmt.Errorf("--alg: %w", err)
	}
	if opts.Bits < 2048 {
		return nil, fmt.Errorf("--bits %d: RSA keys under 2048 bits are refused", opts.Bits)
	}
	if opts.TTL <= 0 {
		return nil, fmt.Errorf("--ttl must be positive")
	}
	priv := filepath.Join(opts.Dir, "id_rsa")
	pub := filepath.Join(opts.Dir, "id_rsa.pub")
	tok := filepath.Join(opts.Dir, "system.token")
	if !opts.Force {
		for _, p := range []string{priv, pub, tok} {
			if _, err := os.Stat(p); err == nil {
				return nil, fmt.Errorf("%s exists; use --force to overwrite it", p)
			} else if !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("checking %s: %w", p, err)
			}
		}
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", opts.Dir, err)
	}
	key, err := rsa.GenerateKey(rand.Reader, opts.Bits)
	if err != nil {
		return nil, fmt.Errorf("generating RSA key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	signer, err := mint.NewSigner(key, alg)
	if err != nil {
		return nil, err
	}
	token, _, err := signer.Sign(mint.Claims{Subject: systemOkeraUser, Groups: []string{"root"}, TTL: opts.TTL}, now)
	if err != nil {
		return nil, err
	}
	writes := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600},
		{pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644},
		{tok, []byte(token + "\n"), 0o600},
	}
	for _, w := range writes {
		if err := writeFileAtomic(w.path, w.data, w.mode); err != nil {
			return nil, err
		}
	}
	return []string{priv, pub, tok}, nil
}

// writeFileAtomic writes through a temporary file and a rename, so a
// gateway watching the file never reads half of it.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// tokenOptions are the okera-token flags.
type tokenOptions struct {
	Key    string
	Sub    string
	Groups string
	TTL    time.Duration
	Alg    string
	Claims []string
}

func cmdToken(fl caddycmd.Flags) (int, error) {
	claims, err := fl.GetStringArray("claim")
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	opts := tokenOptions{
		Key:    fl.String("key"),
		Sub:    fl.String("sub"),
		Groups: fl.String("groups"),
		TTL:    fl.Duration("ttl"),
		Alg:    fl.String("alg"),
		Claims: claims,
	}
	if err := printToken(os.Stdout, opts, time.Now()); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	return caddy.ExitCodeSuccess, nil
}

// registeredClaims are the claims okera-token sets itself or leaves out on
// purpose, each with the flag that sets it ("" for none). A --claim naming
// one is refused rather than dropped or applied: a groups=["admins"] that
// slipped through made an admin token from a command whose help said it
// could not (README "Commands").
var registeredClaims = map[string]string{
	"sub":    "--sub",
	"groups": "--groups",
	"iss":    "",
	"iat":    "--ttl",
	"nbf":    "--ttl",
	"exp":    "--ttl",
	"aud":    "",
	"jti":    "",
}

// parseExtraClaims reads the --claim values, refusing registered claims.
func parseExtraClaims(kvs []string) (map[string]any, error) {
	extra := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("--claim %q: want name=value", kv)
		}
		// " groups" is not "groups" to a JWT library, but it is to a
		// reader of the command line; refuse both spellings.
		if flag, registered := registeredClaims[strings.TrimSpace(name)]; registered {
			msg := fmt.Sprintf("--claim %q: the registered claim %s cannot be set with --claim", kv, strings.TrimSpace(name))
			if flag != "" {
				msg += "; use " + flag
			} else {
				msg += "; okera-token does not set it"
			}
			return nil, errors.New(msg)
		}
		var v any
		if err := json.Unmarshal([]byte(value), &v); err != nil {
			v = value
		}
		extra[name] = v
	}
	return extra, nil
}

// printToken signs a token per opts and writes it with a newline. Usage
// errors are found before the key is read.
func printToken(out io.Writer, opts tokenOptions, now time.Time) error {
	extra, err := parseExtraClaims(opts.Claims)
	if err != nil {
		return err
	}
	if opts.Key == "" {
		return fmt.Errorf("--key is required: the private key to sign with")
	}
	if strings.TrimSpace(opts.Sub) == "" {
		return fmt.Errorf("--sub is required: the user the token is for")
	}
	alg, err := keyfile.ParseAlgorithm(opts.Alg)
	if err != nil {
		return fmt.Errorf("--alg: %w", err)
	}
	key, err := keyfile.LoadPrivateKey(opts.Key)
	if err != nil {
		return err
	}
	signer, err := mint.NewSigner(key, alg)
	if err != nil {
		return err
	}
	c := mint.Claims{Subject: opts.Sub, TTL: opts.TTL, Extra: extra}
	if opts.Groups != "" {
		for _, g := range strings.Split(opts.Groups, ",") {
			if g = strings.TrimSpace(g); g != "" {
				c.Groups = append(c.Groups, g)
			}
		}
	}
	token, _, err := signer.Sign(c, now)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, token)
	return err
}
