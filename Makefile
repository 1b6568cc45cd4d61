# caddy-okera-auth. `make demo` runs the gateway; `make test` runs every test.
SHELL := /bin/bash
GO_SOURCES := $(shell find . -name '*.go' -not -name '*_test.go' -not -path './.git/*') go.mod go.sum
DEMO_USER ?= alice
DEMO_GROUPS ?= analysts,Data-Engineers

.PHONY: all build demo test unit integration vet fmt clean fuzz

all: build

# The custom Caddy: xcaddy (through go run), Caddy v2.11.9, this module.
build: caddy
caddy: $(GO_SOURCES) xcaddy.sh
	./xcaddy.sh

# Keys and a system token for the demo, like okctl generates for Okera.
.auth/id_rsa: | caddy
	./caddy okera-keygen --dir .auth

demo: caddy .auth/id_rsa
	@token=$$(./caddy okera-token --key .auth/id_rsa --sub $(DEMO_USER) --groups $(DEMO_GROUPS) --ttl 8h); \
	echo; \
	echo "Gateway:      http://127.0.0.1:8080  (demo data service behind it on 127.0.0.1:8081)"; \
	echo "Try it (in another terminal):"; \
	echo; \
	echo "  curl -i -H 'Authorization: Bearer $$token' http://127.0.0.1:8080/"; \
	echo; \
	echo "Without a token, or with a forged X-Okera-User, you get 401:"; \
	echo "  curl -i -H 'X-Okera-User: admin' http://127.0.0.1:8080/"; \
	echo; \
	exec ./caddy run --config Caddyfile.example --adapter caddyfile

# Every test: unit tests, then the integration suite against ./caddy.
test: vet unit integration

unit:
	go test -count=1 $$(go list ./... | grep -v /integration)

integration: caddy
	CADDY_BIN=$(CURDIR)/caddy go test -count=1 -timeout 15m ./integration/...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'; git ls-files -o --exclude-standard '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	go vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -f caddy

# Load test against a bare reverse_proxy, plus the Go micro-benchmarks;
# writes bench/RESULTS.md. Never part of `make test`. Knobs (environment):
# BENCH_ROUNDS, BENCH_DURATION, BENCH_CONCURRENCY, more in bench/config_test.go.
.PHONY: bench
bench: caddy
	CADDY_BIN=$(CURDIR)/caddy go test -tags bench -run '^TestGatewayBench$$' -count=1 -v -timeout 30m ./bench/

# Every Go fuzz target for FUZZTIME each (default 10s); see fuzz.sh.
fuzz:
	./fuzz.sh

# Soak: faults of every dependency, a sustained hostile mix, reloads under
# load and a million forged tokens; writes bench/SOAK.md. Never part of
# `make test` (its short smoke, TestSoakSmoke, is). Knobs (environment):
# SOAK_DURATION, SOAK_CONCURRENCY, SOAK_RELOADS, SOAK_FORGED, more in
# bench/soak_test.go.
.PHONY: soak
soak: caddy
	CADDY_BIN=$(CURDIR)/caddy go test -tags soak -run '^TestSoak' -count=1 -v -timeout 30m ./bench/
