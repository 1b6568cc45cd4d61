//go:build bench

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// settings are the knobs of one `make bench` run, read from the environment.
type settings struct {
	rounds      int           // BENCH_ROUNDS: measured rounds per front end (default 5)
	duration    time.Duration // BENCH_DURATION: length of one measured run (default 3s)
	concurrency int           // BENCH_CONCURRENCY: keep-alive connections, one worker each (default 32)
	warmup      time.Duration // BENCH_WARMUP: unrecorded load per front end before round 1 (default 1s)
	memTokens   int           // BENCH_MEMORY_TOKENS: distinct tokens for the memory run (default 150000; 0 skips it)
	memStep     int           // BENCH_MEMORY_STEP: tokens between two memory readings (default 25000)
	profile     string        // BENCH_PROFILE: auto (profile modes that miss a target), always, never
	profileSecs int           // BENCH_PROFILE_SECONDS: length of one profile (default 6)
	microCount  int           // BENCH_MICRO_COUNT: passes over the Go micro-benchmarks (default 3; 0 skips them)
	modes       []string      // BENCH_MODES: comma-separated subset of mode keys (default all)
	cacheDir    string        // BENCH_CACHE_DIR: keys and pre-signed tokens kept between runs
	out         string        // BENCH_OUT: the report (default RESULTS.md in this directory)
	caddyBin    string        // CADDY_BIN: the Caddy under test (the Makefile passes ./caddy)
}

func loadSettings() (settings, error) {
	s := settings{
		rounds:      5,
		duration:    3 * time.Second,
		concurrency: 32,
		warmup:      time.Second,
		memTokens:   150_000,
		memStep:     25_000,
		profile:     "auto",
		profileSecs: 6,
		microCount:  3,
		cacheDir:    filepath.Join(os.TempDir(), "caddy-okera-auth-bench"),
		out:         "RESULTS.md",
		caddyBin:    os.Getenv("CADDY_BIN"),
	}
	var errs []string
	intVar := func(name string, dst *int, min int) {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < min {
				errs = append(errs, fmt.Sprintf("%s=%q: want a whole number >= %d", name, v, min))
				return
			}
			*dst = n
		}
	}
	durVar := func(name string, dst *time.Duration) {
		if v := os.Getenv(name); v != "" {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil {
				// A bare number means seconds: BENCH_DURATION=3.
				if n, nerr := strconv.ParseFloat(strings.TrimSpace(v), 64); nerr == nil {
					d, err = time.Duration(n*float64(time.Second)), nil
				}
			}
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Sprintf("%s=%q: want a positive duration such as 3s", name, v))
				return
			}
			*dst = d
		}
	}
	intVar("BENCH_ROUNDS", &s.rounds, 1)
	durVar("BENCH_DURATION", &s.duration)
	intVar("BENCH_CONCURRENCY", &s.concurrency, 1)
	durVar("BENCH_WARMUP", &s.warmup)
	intVar("BENCH_MEMORY_TOKENS", &s.memTokens, 0)
	intVar("BENCH_MEMORY_STEP", &s.memStep, 1)
	intVar("BENCH_PROFILE_SECONDS", &s.profileSecs, 1)
	intVar("BENCH_MICRO_COUNT", &s.microCount, 0)
	if v := os.Getenv("BENCH_PROFILE"); v != "" {
		switch v {
		case "auto", "always", "never":
			s.profile = v
		default:
			errs = append(errs, fmt.Sprintf("BENCH_PROFILE=%q: want auto, always or never", v))
		}
	}
	if v := os.Getenv("BENCH_MODES"); v != "" {
		for _, m := range strings.Split(v, ",") {
			if m = strings.TrimSpace(m); m != "" {
				s.modes = append(s.modes, m)
			}
		}
	}
	if v := os.Getenv("BENCH_CACHE_DIR"); v != "" {
		s.cacheDir = v
	}
	if v := os.Getenv("BENCH_OUT"); v != "" {
		s.out = v
	}
	if len(errs) > 0 {
		return s, fmt.Errorf("bench settings: %s", strings.Join(errs, "; "))
	}
	return s, nil
}

// command is the command line that reproduces this run, for the report.
func (s settings) command() string {
	var env []string
	for _, name := range []string{"BENCH_ROUNDS", "BENCH_DURATION", "BENCH_CONCURRENCY", "BENCH_WARMUP",
		"BENCH_MEMORY_TOKENS", "BENCH_MEMORY_STEP", "BENCH_PROFILE", "BENCH_PROFILE_SECONDS",
		"BENCH_MICRO_COUNT", "BENCH_MODES"} {
		if v := os.Getenv(name); v != "" {
			env = append(env, name+"="+v)
		}
	}
	return strings.TrimSpace(strings.Join(env, " ") + " make bench")
}

// wants reports whether the run includes the mode with this key.
func (s settings) wants(key string) bool {
	if len(s.modes) == 0 || key == modeBare {
		return true // the bare proxy is the yardstick of every ratio
	}
	for _, m := range s.modes {
		if m == key {
			return true
		}
	}
	return false
}
