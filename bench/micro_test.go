//go:build bench

package bench

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/okeragate/caddy-okera-auth/validator"
)

// BenchmarkColdVsRaw measures the issue's "validator cold cost ≤ 1.3× raw
// crypto/rsa verify" as a paired comparison: every iteration verifies one
// token with crypto/rsa alone (decode the signature, hash the signing input,
// rsa.VerifyPKCS1v15: the floor any verifier pays) and then validates the
// same token with a validator.Chain that has never seen it, key cache on at
// its default size (a miss and an insert, as in the gateway). Both halves
// are timed separately within the same iteration, so a shared machine's
// drift hits both alike; it reports raw-ns/op, cold-ns/op and their ratio.
// It uses only what validator exports.
func BenchmarkColdVsRaw(b *testing.B) {
	f := fixtureForMicro(b)
	for _, alg := range []string{"RS256", "RS512"} {
		b.Run(alg, func(b *testing.B) {
			h := crypto.SHA256
			if alg == "RS512" {
				h = crypto.SHA512
			}
			toks := f.tokens[alg]
			obs := &hitCounter{}
			ctx := context.Background()
			var chain *validator.Chain
			fresh := func() {
				if chain != nil {
					chain.Close()
				}
				kv := validator.NewKeyValidator([]validator.Key{{ID: "bench.pub", Algorithm: alg, Public: &f.key.PublicKey}})
				var err error
				if chain, err = validator.NewChain(validator.ChainConfig{Keys: kv, Observer: obs}); err != nil {
					b.Fatal(err)
				}
			}
			fresh()
			defer func() { chain.Close() }()
			var raw, cold time.Duration
			n, i := 0, 0
			b.ReportAllocs()
			for b.Loop() {
				if i == len(toks) {
					// Every token has been seen: a new chain makes them
					// all unseen again.
					b.StopTimer()
					fresh()
					i = 0
					b.StartTimer()
				}
				tok := toks[i]
				i++
				t0 := time.Now()
				dot := strings.LastIndexByte(tok, '.')
				sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
				if err != nil {
					b.Fatal(err)
				}
				d := h.New()
				d.Write([]byte(tok[:dot]))
				if err := rsa.VerifyPKCS1v15(&f.key.PublicKey, h, d.Sum(nil), sig); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if _, err := chain.Validate(ctx, tok); err != nil {
					b.Fatal(err)
				}
				cold += time.Since(t1)
				raw += t1.Sub(t0)
				n++
			}
			b.ReportMetric(float64(raw)/float64(n), "raw-ns/op")
			b.ReportMetric(float64(cold)/float64(n), "cold-ns/op")
			b.ReportMetric(float64(cold)/float64(raw), "cold/raw")
			if l := obs.lookups.Load(); l > 0 {
				b.ReportMetric(float64(obs.hits.Load())/float64(l), "hits/op")
			}
		})
	}
}

// coldTokens is how many distinct tokens the benchmark cycles through before
// it replaces the chain.
const coldTokens = 2048

type microFixture struct {
	key    *rsa.PrivateKey
	tokens map[string][]string // by algorithm
}

var (
	microOnce sync.Once
	micro     microFixture
	microErr  error
)

func fixtureForMicro(b *testing.B) microFixture {
	b.Helper()
	microOnce.Do(func() {
		micro.key, microErr = rsa.GenerateKey(rand.Reader, keyBits)
		if microErr != nil {
			return
		}
		micro.tokens = map[string][]string{}
		now := time.Now()
		for _, alg := range []string{"RS256", "RS512"} {
			toks, err := signMany(newSigner(micro.key, alg), coldTokens, func(i int) map[string]any {
				return userClaims(alg+"-micro-"+strconv.Itoa(i), benchGroups, now, time.Hour)
			}, nil)
			if err != nil {
				microErr = err
				return
			}
			micro.tokens[alg] = toks
		}
	})
	if microErr != nil {
		b.Fatal(microErr)
	}
	return micro
}

// hitCounter counts the chain's cache lookups and hits, so the benchmark
// shows it really was cold.
type hitCounter struct{ hits, lookups atomic.Int64 }

func (h *hitCounter) ObserveValidation(string, string, time.Duration) {}
func (h *hitCounter) ObserveCache(_ string, hit bool) {
	h.lookups.Add(1)
	if hit {
		h.hits.Add(1)
	}
}
