# qq — build, run and test. Plain `go` commands work too; these are the
# ones the README and CI use.
GO        ?= go
PREFIX    ?= /usr/local
BIN       := bin
PKGS      := ./...
FUZZTIME  ?= 10s

.PHONY: all build run test race vet fmt fmt-check fuzz bench ci clean

all: build

build:
	$(GO) build -o $(BIN)/ ./daemon/qqd ./client/qq

# Start a daemon on the embedded defaults (127.0.0.1:5190, data in ./qqd-data).
run:
	$(GO) run ./daemon/qqd

# The test command: every test, with the race detector, bounded in time.
test:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Short runs of every fuzz target (the seed corpora also run in `make test`).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzFrameReader$$' -fuzztime $(FUZZTIME) ./daemon/protocol
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRequest$$' -fuzztime $(FUZZTIME) ./daemon/protocol
	$(GO) test -run '^$$' -fuzz '^FuzzWordfilter$$' -fuzztime $(FUZZTIME) ./plugins/wordfilter/wordfilter

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

ci: fmt-check vet test fuzz

clean:
	rm -rf $(BIN)
