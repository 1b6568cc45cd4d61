// Package bench measures the okera_auth gateway against a bare Caddy
// reverse_proxy. It holds no library code: everything is in test files
// behind the "bench" build tag, so `make test` never builds or runs it.
//
// `make bench` builds ./caddy and runs TestGatewayBench, which
//
//   - starts one upstream (this test binary re-executed as a tiny net/http
//     server, which also plays the remote validation endpoint) and one Caddy
//     process per front end: a bare reverse_proxy and okera_auth in each
//     benchmarked mode;
//   - drives them with keep-alive HTTP/1.1 connections, interleaving the
//     front ends round by round so that drift on a shared machine hits every
//     mode alike, and reports medians and ratios to the bare proxy;
//   - fills one gateway's token cache past its bound and records the
//     process's memory on the way;
//   - runs the Go micro-benchmarks of validator/, caddymodule/ and this
//     package (validator cold path against raw crypto/rsa);
//   - writes everything to bench/RESULTS.md.
//
// Settings come from the environment: BENCH_ROUNDS, BENCH_DURATION,
// BENCH_CONCURRENCY and the others listed in config_test.go.
//
// `make soak` runs TestSoak (soak_*_test.go, behind the "soak" build tag,
// reusing the driver, process and token helpers, which build under either
// tag): every dependency of the gateway broken in turn under load, a
// sustained hostile mix with spoofed identity headers checked at the
// upstream, reloads under load, and a million forged tokens; it writes
// bench/SOAK.md and fails on a wrong answer, a spoofed identity, a leaked
// goroutine or descriptor, or unbounded memory.
package bench
