# qq — build, run and test. Plain `go` commands work too (export
# GOTOOLCHAIN=go1.27.3 for the same Go); these are the ones the README and
# CI use.
GO        ?= go
# The Go every target builds, tests and checks with: go1.27.3, which the
# installed go (1.26.8 is enough) fetches once through the Go module
# proxy. go1.26.8's standard library has vulnerabilities that qqd reaches
# (net/http, crypto/tls, crypto/x509, html/template), fixed in 1.26.9 and
# 1.26.10; `make vuln` checks. Set here, it wins over GOTOOLCHAIN in the
# environment (`local` on machines whose go.env says so, which also makes
# go ignore go.mod's toolchain line); `make GOTOOLCHAIN=...` picks another.
GOTOOLCHAIN := go1.27.3
export GOTOOLCHAIN
PREFIX    ?= /usr/local
BIN       := bin
# The commands `make build` and `make install` build; qqadmin once it exists.
CMDS      := ./daemon/qqd ./client/qq $(if $(wildcard admin/qqadmin/*.go),./admin/qqadmin)

# `make install` (see docs/operations.md, "Running under systemd"). The
# unit and sysusers directories default to ones under PREFIX that systemd
# searches for PREFIX=/usr/local and PREFIX=/usr; pass
# SYSTEMDUNITDIR=/etc/systemd/system for another PREFIX. DESTDIR stages
# the whole tree (packaging); paths written into the unit omit it.
BINDIR         ?= $(PREFIX)/bin
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR    ?= $(PREFIX)/lib/sysusers.d
CONFDIR        ?= /etc/qqd
DESTDIR        ?=
INSTALL        ?= install
PKGS      := ./...
FUZZTIME  ?= 10s
# The checkers `make vuln` and `make staticcheck` run, at pinned versions,
# installed with `go install` into TOOLBIN; and the Go vulnerability
# database govulncheck reads offline: this version of the
# golang.org/x/vulndb module (its OSV files; the database of early
# November 2026), which .ci/vulndb turns into govulncheck's file layout.
GOVULNCHECK_VERSION := v1.9.0
STATICCHECK_VERSION := v0.8.2
VULNDB              := golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018
TOOLBIN             ?= $(shell $(GO) env GOPATH)/bin

.PHONY: all build run test race vet fmt fmt-check vuln staticcheck fuzz bench perf10m ci clean install uninstall perf perf-cluster exhaustion screenshots cluster cluster-down

all: build

build:
	$(GO) build -o $(BIN)/ $(CMDS)

# Start a daemon on the embedded defaults (127.0.0.1:5190, data in ./qqd-data).
run:
	$(GO) run ./daemon/qqd

# A cluster on loopback (issue 15): PostgreSQL, three NATS servers, three
# qqd nodes (a, b, c) and a TCP load balancer on 127.0.0.1:5190, all in
# CLUSTER_DIR; runs until ^C or `make cluster-down`. Faults by hand:
#   go run ./daemon/cluster/qqcluster kill -dir ./qqcluster-data -node b
# (and start, stop, status, nats-stop/nats-start -nats I, pg-stop/pg-start).
# CLUSTER_FLAGS='-dsn postgres://...' uses a running PostgreSQL instead.
CLUSTER_DIR    ?= ./qqcluster-data
CLUSTER_FLAGS  ?=
cluster:
	$(GO) run ./daemon/cluster/qqcluster up -dir $(CLUSTER_DIR) $(CLUSTER_FLAGS)

cluster-down:
	$(GO) run ./daemon/cluster/qqcluster down -dir $(CLUSTER_DIR)

# The test command: every test, with the race detector, bounded in time.
test:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# govulncheck, offline, against the database of VULNDB (built afresh in a
# temporary directory): fails on a vulnerability that the code reaches, in
# a module or in the standard library of the Go it runs with.
vuln:
	GOBIN=$(TOOLBIN) $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)
	@db=$$(mktemp -d) && trap 'rm -rf "$$db"' EXIT && \
		$(GO) run ./.ci/vulndb -module $(VULNDB) -out "$$db" && \
		echo "$(TOOLBIN)/govulncheck -db file://$$db $(PKGS)" && \
		$(TOOLBIN)/govulncheck -db "file://$$db" $(PKGS)

# staticcheck on every package and on the CI's own Go (.ci/vulndb); a
# finding fails. A deliberate exception is a //lint:ignore CHECK reason
# line above it.
staticcheck:
	GOBIN=$(TOOLBIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(TOOLBIN)/staticcheck $(PKGS) ./.ci/vulndb

# Short runs of every fuzz target (the seed corpora also run in `make test`).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzFrameReader$$' -fuzztime $(FUZZTIME) ./daemon/protocol
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRequest$$' -fuzztime $(FUZZTIME) ./daemon/protocol
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRequestDifferential$$' -fuzztime $(FUZZTIME) ./daemon/protocol
	$(GO) test -run '^$$' -fuzz '^FuzzWordfilter$$' -fuzztime $(FUZZTIME) ./plugins/wordfilter/wordfilter
	$(GO) test -run '^$$' -fuzz '^FuzzSession$$' -fuzztime $(FUZZTIME) ./daemon

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# The web client's screenshots in the README (docs/img/web-*.png), taken
# in headless Chromium by a test of the current build.
screenshots:
	QQ_WEB_SCREENSHOTS=$(CURDIR)/docs/img $(GO) test -count=1 -run '^TestScreenshots$$' ./daemon/web/browsertest

ci: fmt-check vet staticcheck vuln test fuzz

# The load-test suite against fresh, CPU-pinned qqd processes on loopback,
# ending with a Markdown report (docs/performance.md, "Reproduce
# everything: make perf"). About half an hour; PERF_QUICK=1 for a smoke
# test. Knobs: PERF_CASES, PERF_RUNS, PERF_OUT, ... (see the script).
perf:
	GO=$(GO) ./client/qqbench/perf.sh

# Cluster mode (issue 15) side by side, interleaved: one qqd on sqlite,
# on postgres, on postgres in cluster mode, three nodes on postgres, and
# the push latency same-node vs cross-node (docs/performance.md,
# "Cluster"). About 15 minutes; PERF_QUICK=1 for a smoke test. Knobs:
# PERF_RUNS, PERF_CONFIGS, PERF_USERS, PERF_DURATION, PERF_LAT_RATE, ...
perf-cluster:
	GO=$(GO) ./client/qqbench/cluster-bench.sh

# The same pinned runs on a store of 10 million messages (filled once and
# kept in perf-results/10m.pebble, or 10m.db with PERF_STORAGE=sqlite): dm
# closed loop and history/offline reads. Knobs: PERF_RUNS, PERF_STORAGE,
# PERF_10M_DB, PERF_10M_MESSAGES.
perf10m:
	GO=$(GO) PERF_CASES=10m ./client/qqbench/perf.sh

# What qqd does under exhaustion attacks (20,000 connections that never
# log in, slow-loris, a register flood) and when its disk fills
# (docs/operations.md, "Exhaustion"). About 4 minutes; needs root for the
# disk case's tmpfs. Knobs: EXH_CASES, EXH_OUT (see the script).
exhaustion:
	GO=$(GO) ./client/qqbench/exhaustion.sh

clean:
	rm -rf $(BIN)

# Install the binaries, the systemd unit (ExecStart pointing at BINDIR and
# CONFDIR), the sysusers.d entry, and CONFDIR/qq.yaml unless one is there
# (an existing configuration is never overwritten). Safe to run again.
# Then, as root: systemd-sysusers; systemctl daemon-reload;
# systemctl enable --now qqd.
install: build
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(CONFDIR)
	$(INSTALL) -m 0755 $(addprefix $(BIN)/,$(notdir $(CMDS))) $(DESTDIR)$(BINDIR)/
	sed -e 's|/usr/local/bin/qqd|$(BINDIR)/qqd|g' -e 's|/etc/qqd/qq.yaml|$(CONFDIR)/qq.yaml|g' \
		systemd/qqd.service >$(BIN)/qqd.service
	$(INSTALL) -m 0644 $(BIN)/qqd.service $(DESTDIR)$(SYSTEMDUNITDIR)/qqd.service
	$(INSTALL) -m 0644 systemd/qqd.sysusers $(DESTDIR)$(SYSUSERSDIR)/qqd.conf
	@if [ -e $(DESTDIR)$(CONFDIR)/qq.yaml ]; then \
		echo "keeping the existing $(DESTDIR)$(CONFDIR)/qq.yaml"; \
	else \
		echo "$(INSTALL) -m 0644 qq.yaml $(DESTDIR)$(CONFDIR)/qq.yaml"; \
		$(INSTALL) -m 0644 qq.yaml $(DESTDIR)$(CONFDIR)/qq.yaml; \
	fi

# Remove what install put in place except the configuration (CONFDIR) and
# the data (/var/lib/qqd), and the user and groups, which stay for a
# later install; stop the service first.
uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,qqd qq qqadmin)
	rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/qqd.service $(DESTDIR)$(SYSUSERSDIR)/qqd.conf
	@echo "kept $(DESTDIR)$(CONFDIR) and /var/lib/qqd; remove them by hand if you want them gone"
