package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/okeragate/caddy-okera-auth/keyfile"
	"github.com/okeragate/caddy-okera-auth/resolver"
	"github.com/okeragate/caddy-okera-auth/validator"
)

// Exit codes of caddy okera-verify besides 0 (valid) and 1 (bad usage or
// configuration): the token's fault, or a validator that could not answer.
const (
	exitTokenInvalid     = 2
	exitValidatorFailure = 3
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "okera-verify",
		Usage: "[--public-key <path>[:ALG]]... [--remote <url>] [--timeout 5s] [<token>|-]",
		Short: "Validates a token the way okera_auth does",
		Long: `
Runs a token through the validation chain of the okera_auth handler: strict
token syntax, then the remote endpoint (if given), then the public keys, then
the claim checks. The groups come from the token's groups claim.

A valid token prints, on stdout, a JSON object with the user, the groups, the
validator that accepted it (remote or public_key) and the claims, and exits 0.
An invalid token prints the reason (the word that okera_auth puts into
{http.auth.okera.error}, such as expired or bad_signature) and the detail on
stderr, and exits 2; exit 3 means a validator could not answer (the remote
endpoint is down: okera_auth would answer 503); exit 1 is a usage error.

--public-key  a PEM public key (PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE),
              as a path or file:// URI, optionally followed by :RSA256 or
              :RSA512 (default RSA512); repeatable
--remote      the remote validation endpoint (Okera's
              JWT_AUTHENTICATION_SERVER_URL), asked first; a rejection by it
              falls through to the public keys, as in okera_auth
--timeout     the remote endpoint's timeout; default 5s

The token is the argument, or read from stdin when the argument is - or
absent. A leading "Bearer " is ignored.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().StringArray("public-key", nil, "Public key <path>[:ALG] to verify with (repeatable)")
			cmd.Flags().String("remote", "", "Remote validation endpoint URL")
			cmd.Flags().Duration("timeout", defaultRemoteTimeout, "Timeout of the remote endpoint")
			cmd.Args = cobra.MaximumNArgs(1)
			// The outcome is printed by the command itself; the exit code
			// says the rest.
			cmd.SilenceErrors = true
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdVerify)
		},
	})
}

// verifyOptions are the okera-verify flags and argument.
type verifyOptions struct {
	PublicKeys []string
	Remote     string
	Timeout    time.Duration
	Token      string // "" or "-": read stdin
}

// verifyResult is what a valid token prints.
type verifyResult struct {
	User      string         `json:"user"`
	Groups    []string       `json:"groups"`
	Validator string         `json:"validator"`
	Claims    map[string]any `json:"claims"`
}

func cmdVerify(fl caddycmd.Flags) (int, error) {
	keys, err := fl.GetStringArray("public-key")
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	opts := verifyOptions{
		PublicKeys: keys,
		Remote:     fl.String("remote"),
		Timeout:    fl.Duration("timeout"),
		Token:      fl.Arg(0),
	}
	// A usage error goes back to Caddy, which logs it and exits 1.
	return verify(context.Background(), opts, os.Stdin, os.Stdout, os.Stderr)
}

// verify validates opts.Token and returns the exit code. A usage error is
// returned as an error (exit code 1).
func verify(ctx context.Context, opts verifyOptions, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	chain, err := verifyChain(opts)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer chain.Close()
	token, err := verifyToken(opts.Token, stdin)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	id, err := chain.Validate(ctx, token)
	if err != nil {
		var verr *validator.Error
		if !errors.As(err, &verr) {
			verr = &validator.Error{Reason: "internal", Unavailable: true, Err: err}
		}
		fmt.Fprintf(stderr, "token not valid: %s\n%s\n", verr.Reason, verr.Error())
		if verr.Unavailable {
			return exitValidatorFailure, nil
		}
		return exitTokenInvalid, nil
	}
	groups, err := (&resolver.Chain{Resolvers: []resolver.Resolver{&resolver.ClaimResolver{Claim: DefaultGroupsClaim}}}).
		Resolve(ctx, resolver.Request{User: id.User, Claims: id.Claims})
	if err != nil {
		// Only a malformed groups claim fails here; okera_auth answers 401.
		fmt.Fprintf(stderr, "token not valid: malformed_groups\n%v\n", err)
		return exitTokenInvalid, nil
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(verifyResult{User: id.User, Groups: groups.Names, Validator: id.By, Claims: id.Claims}); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	return caddy.ExitCodeSuccess, nil
}

// verifyChain builds the validation chain the flags describe: the same
// validator.Chain okera_auth uses, without caching.
func verifyChain(opts verifyOptions) (*validator.Chain, error) {
	cfg := validator.ChainConfig{CacheSize: -1}
	if opts.Remote != "" {
		if err := checkHTTPURL(opts.Remote); err != nil {
			return nil, fmt.Errorf("--remote: %w", err)
		}
		cfg.Remote = &validator.RemoteValidator{URL: opts.Remote, Timeout: opts.Timeout}
	}
	if len(opts.PublicKeys) > 0 {
		keys := make([]validator.Key, 0, len(opts.PublicKeys))
		for _, spec := range opts.PublicKeys {
			path, alg, err := splitKeySpec(spec)
			if err != nil {
				return nil, fmt.Errorf("--public-key %s: %w", spec, err)
			}
			pub, err := keyfile.LoadPublicKey(path)
			if err != nil {
				return nil, fmt.Errorf("--public-key: %w", err)
			}
			keys = append(keys, validator.Key{ID: path, Algorithm: alg, Public: pub, Source: validator.ByPublicKey})
		}
		cfg.Keys = validator.NewKeyValidator(keys)
	}
	if cfg.Remote == nil && cfg.Keys == nil {
		return nil, errors.New("nothing to validate with: give --public-key <path>[:ALG] or --remote <url>")
	}
	return validator.NewChain(cfg)
}

// splitKeySpec splits "<path>[:ALG]". The suffix counts as an algorithm only
// when it is one, so paths and file:// URIs with colons still work.
func splitKeySpec(spec string) (path, alg string, err error) {
	if i := strings.LastIndexByte(spec, ':'); i > 0 {
		if a, err := keyfile.ParseAlgorithm(spec[i+1:]); err == nil && spec[i+1:] != "" {
			return spec[:i], a, nil
		}
	}
	alg, err = keyfile.ParseAlgorithm("")
	return spec, alg, err
}

// verifyToken is the argument, or stdin for "" and "-", trimmed and
// without a "Bearer " prefix.
func verifyToken(arg string, stdin io.Reader) (string, error) {
	if arg != "" && arg != "-" {
		return trimBearer(arg), nil
	}
	data, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
	if err != nil {
		return "", fmt.Errorf("reading the token from stdin: %w", err)
	}
	token := trimBearer(string(data))
	if token == "" {
		return "", errors.New("no token: give it as the argument or on stdin")
	}
	return token, nil
}

func trimBearer(s string) string {
	s = strings.TrimSpace(s)
	if scheme, rest, ok := strings.Cut(s, " "); ok && strings.EqualFold(scheme, "Bearer") {
		s = strings.TrimSpace(rest)
	}
	return s
}
