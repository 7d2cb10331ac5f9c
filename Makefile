# tokenrelay — one entry point for building, checking and testing everything.
# `make help` lists the targets. Tool versions are pinned in package.json /
# package-lock.json (buf, protoc-gen-es, TypeScript), gen/go.mod (protoc-gen-go,
# protoc-gen-connect-go) and tools/go.mod (staticcheck).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/bin:$(PATH)

# Every module of go.work, as package patterns (`go test ./...` at a go.work
# root tests nothing).
GO_PKGS = $(shell go list -m -f '{{.Dir}}/...')
# Modules kept out of go.work on purpose, tested on their own with GOWORK=off:
# the peer-library benchmarks would otherwise raise dependency versions for
# the whole workspace.
STANDALONE_MODULES := bench/jwtpeers/go.mod

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install
install: node_modules/.installed bin/staticcheck ## install every pinned tool and dependency (npm ci, Go modules, staticcheck)

node_modules/.installed: package.json package-lock.json gen/ts/package.json sdk/ts/package.json web/package.json
	npm ci --no-audit --no-fund
	@touch $@

bin/staticcheck: tools/go.mod tools/go.sum
	cd tools && GOWORK=off go build -o ../bin/staticcheck honnef.co/go/tools/cmd/staticcheck

.PHONY: generate
generate: node_modules/.installed ## regenerate gen/ from proto/ (buf, local plugins only)
	buf format -w
	buf generate
	cd gen && go mod tidy

.PHONY: checkgenerate
checkgenerate: generate ## fail if generation changes anything under version control
	@if [ -n "$$(git status --porcelain -- proto gen)" ]; then \
		echo "generated code is out of date; run 'make generate' and commit:"; \
		git status --porcelain -- proto gen; git diff --stat -- proto gen; exit 1; fi

.PHONY: lint
lint: install ## buf lint/format/breaking, gofmt, go vet, staticcheck, TypeScript type-check
	buf lint
	buf format -d --exit-code
	@if git rev-parse --verify --quiet main >/dev/null && git cat-file -e main:buf.yaml 2>/dev/null; then \
		buf breaking --against '.git#branch=main'; \
	else echo "buf breaking: no main branch with buf.yaml to compare against yet"; fi
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/go/') ); \
		if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	go vet $(GO_PKGS)
	staticcheck $(GO_PKGS)
	@for m in $(STANDALONE_MODULES); do d=$$(dirname $$m); echo "vet $$d"; \
		(cd $$d && GOWORK=off go vet ./... && GOWORK=off staticcheck ./...); done
	npm run typecheck

# Every command of the workspace: each package main under a cmd/ directory
# (services/<name>/cmd/<name>d, services/embedded/cmd/tokenrelayd,
# services/scaleout/cmd/scaleoutctl, cmd/tokenrelay), found by go list so that
# a new one needs no edit here; built by `make build` into bin/<name>.
CMD_PKGS = $(shell go list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' $(GO_PKGS) | grep /cmd/)

.PHONY: build
build: install ## build every Go module, every command into bin/ (tokenrelayd, the six service daemons, tokenrelay, scaleoutctl) and the TypeScript packages
	go build $(GO_PKGS)
	go build -o bin/ $(CMD_PKGS)
	npm run build --workspaces --if-present

.PHONY: test
test: install lint checkgenerate ## everything CI runs: lint, checkgenerate, Go tests with -race, fuzzing on a budget, TS tests, browser tests (e2e)
	go test -race -count=1 $(GO_PKGS)
	@for m in $(STANDALONE_MODULES); do d=$$(dirname $$m); echo "test $$d"; \
		(cd $$d && GOWORK=off go test -race -count=1 ./...); done
	$(MAKE) fuzz
	npm test
	$(MAKE) e2e

# Every fuzz target with its budget, a number of executions: about what 15 s
# gave each on the 2-core CI machine while it was busy. A count, not a
# duration: with -fuzztime as a duration, Go 1.26's fuzz coordinator can fail
# a target with a bare "context deadline exceeded" at the deadline when its
# workers are starved (golang/go#75804, fixed in Go 1.27), which turned CI
# red with no crasher. FUZZTIME overrides every budget (make fuzz
# FUZZTIME=10m, or 1000000x). New crashers land in the package's
# testdata/fuzz and fail the run.
FUZZTIME ?=
FUZZ_TARGETS := sdk/go/token:FuzzVerify:10000x sdk/go/keys:FuzzParseJWKS:25000x sdk/go/vault:FuzzParseRecord:40000x \
	services/gateway:FuzzParseIssuers:30000x sdk/go/capability/sealed:FuzzOpen:250000x services/gateway/tts:FuzzTokenEndpoint:50000x

.PHONY: fuzz
fuzz: ## run every fuzz target for its budget of executions (FUZZTIME overrides: 10m, 1000000x)
	@for t in $(FUZZ_TARGETS); do dir=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; budget=$${rest#*:}; \
		if [ -n "$(FUZZTIME)" ]; then budget=$(FUZZTIME); fi; echo "fuzz $$dir $$name for $$budget"; \
		(cd $$dir && go test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$$budget .) || exit 1; done

# The reliability suite at length (RELIABILITY.md): `make test` runs the same
# tests with a few trials each; this runs many (seed logged; replay one with
# TOKENRELAY_RELIABILITY_SEED=N) and adds the PostgreSQL restart under load,
# which restarts the shared server (pg_ctlcluster, TOKENRELAY_PG_CLUSTER,
# default "15 main"): run it when nothing else uses that server.
RELIABILITY_TESTS := TestCrash|TestDomainDown|TestConcurrency|TestIssuerUnreachable|TestPostgresRestart

.PHONY: reliability
reliability: ## long reliability suite: many SIGKILL/SIGSTOP trials mid-saga, 1,000 concurrent spends, PostgreSQL restarted under load (restarts the shared server)
	cd services/scaleout && TOKENRELAY_RELIABILITY=long TOKENRELAY_RELIABILITY_PG_RESTART=1 TOKENRELAY_REQUIRE_POSTGRES=1 \
		go test -race -count=1 -timeout 60m -v -run '$(RELIABILITY_TESTS)' .

.PHONY: bench
bench: ## SDK micro-benchmarks, peer libraries, and a short load run on the embedded system; figures in bench/out/
	mkdir -p bench/out
	cd sdk/go && go test -run='^$$' -bench=. -benchmem -count=6 ./token/ | tee ../../bench/out/token.txt
	cd bench/jwtpeers && GOWORK=off go test -run='^$$' -bench=. -benchmem -count=6 | tee ../out/peers.txt
	go build -o bin/tokenrelayd ./services/embedded/cmd/tokenrelayd
	for users in 1 8 32 64; do \
		go run ./bench/load -server bin/tokenrelayd -users $$users -checkouts $$((512 / users < 40 ? 512 / users : 40)) \
			-json bench/out/load-$$users.json | tee bench/out/load-$$users.txt; done

# The points of bench-scaleout: virtual users, each doing 40 checkouts (512
# in all above 12 users), as in bench.
# Every virtual user of bench/load is the one demo shopper watching its
# order, so the scale-out's OrderProcessing replicas are started allowing
# 64 WatchOrder streams a user (TOKENRELAY_WATCH_PER_USER; default 8);
# bench/load -server does the same for tokenrelayd.
BENCH_USERS ?= 1 8 32
BENCH_CHECKOUTS = $$((512 / users < 40 ? 512 / users : 40))

.PHONY: bench-scaleout
bench-scaleout: ## load at 1, 8, 32 users on the embedded system, then through the gateway of the PostgreSQL scale-out (scripts/scaleout.sh); figures in bench/out/
	mkdir -p bench/out
	go build -o bin/tokenrelayd ./services/embedded/cmd/tokenrelayd
	go build -o bin/load ./bench/load
	for users in $(BENCH_USERS); do \
		bin/load -server bin/tokenrelayd -label embedded -idle 3s -users $$users -checkouts $(BENCH_CHECKOUTS) \
			-json bench/out/embedded-$$users.json | tee bench/out/embedded-$$users.txt; done
	TOKENRELAY_WATCH_PER_USER=64 SCALEOUT_RUN='for users in $(BENCH_USERS); do \
		bin/load -url "$$SCALEOUT_GATEWAY" -pids "$$SCALEOUT_PIDS" -metrics "$$SCALEOUT_METRICS" -postgres -idle 3s \
			-label scale-out -users $$users -checkouts $(BENCH_CHECKOUTS) \
			-json bench/out/scaleout-$$users.json | tee bench/out/scaleout-$$users.txt; done' \
		scripts/scaleout.sh
	@for sys in embedded scaleout; do for users in $(BENCH_USERS); do grep -h '^row:' bench/out/$$sys-$$users.txt; done; done

.PHONY: tokenrelay
tokenrelay: ## build the operator's command (token inspect/verify, keys, vault) into bin/tokenrelay
	go build -o bin/tokenrelay ./cmd/tokenrelay

# Where make run listens and keeps its data: `make run ADDR=127.0.0.1:9090
# DATA=/tmp/tr`, else TOKENRELAY_ADDR and TOKENRELAY_DATA from the environment
# (the variables tokenrelayd itself reads), else tokenrelayd's defaults.
ADDR ?= $(or $(TOKENRELAY_ADDR),127.0.0.1:8080)
DATA ?= $(or $(TOKENRELAY_DATA),.data)

.PHONY: run
run: web ## run the whole checkout at http://127.0.0.1:8080 (ADDR=host:port or TOKENRELAY_ADDR; data in DATA or TOKENRELAY_DATA, default ./.data)
	go build -o bin/tokenrelayd ./services/embedded/cmd/tokenrelayd
	bin/tokenrelayd -addr '$(ADDR)' -data '$(DATA)' -web web/dist

.PHONY: web
web: node_modules/.installed ## build the browser checkout (gen/ts, sdk/ts, then web/ with Vite) into web/dist
	npm run build -w @tokenrelay/gen -w @tokenrelay/sdk -w @tokenrelay/web

# The lock timeout makes two first runs on one machine (make test beside
# make test) wait for each other's install instead of failing.
.PHONY: browser
browser: ## install Debian's chromium for the browser tests when it is missing (root, as on CI)
	command -v chromium || (apt-get -o DPkg::Lock::Timeout=600 update && apt-get -o DPkg::Lock::Timeout=600 install -y chromium)

.PHONY: e2e
e2e: browser web ## browser tests: bin/tokenrelayd serving web/dist, driven in chromium by playwright-core
	go build -o bin/tokenrelayd ./services/embedded/cmd/tokenrelayd
	npm run e2e

.PHONY: screenshots
screenshots: ## run the browser tests and keep their screenshots in docs/ (shown in the README)
	TOKENRELAY_SCREENSHOTS=docs $(MAKE) e2e

.PHONY: scaleout
scaleout: ## run every service as its own process (two OrderProcessing replicas) on PostgreSQL, seed, check out, stop
	scripts/scaleout.sh

.PHONY: clean
clean: ## remove build output (keeps .data)
	rm -rf bin gen/ts/dist gen/ts/build
