# Strongroom — the two commands a new machine needs are `make run` and `make test`.
GO        ?= go
BIN       := bin/ca
DATA      ?= ./data
GOFLAGS   := -tags nomsgpack
PKGS      := ./...
# Debian packages the tests drive for real.
TEST_DEBS := certbot lego dehydrated uacme caddy acme-tiny apache2-bin gnutls-bin openssl ca-certificates curl python3 util-linux softhsm2 opensc chromium chromium-driver jq xxd

.PHONY: build run test deps bench fuzz soak lint clean

build:
	$(GO) build $(GOFLAGS) -o $(BIN) ./cmd/ca

## run: start the CA on embedded defaults (a fresh ./data is initialised on first start)
run: build
	./$(BIN) serve --data $(DATA)

## deps: install what the tests need (Debian packages; Go modules come with go test)
deps:
	@./scripts/install-test-deps.sh $(TEST_DEBS)

## test: install test dependencies, then run every test (SQLite, PostgreSQL, Redis, real clients)
test: deps
	$(GO) vet $(GOFLAGS) $(PKGS)
	$(GO) test $(GOFLAGS) -count=1 -timeout 20m $(PKGS)
	@./scripts/fuzz.sh 5s

## bench: every figure beside its reference measured in the same run
bench: build
	@./scripts/bench.sh

## fuzz: long fuzzing campaign (FUZZTIME per target, default 5m)
fuzz:
	@./scripts/fuzz.sh $${FUZZTIME:-5m}

## soak: long-running load against a real `ca serve`
soak: build
	$(GO) test -count=1 -timeout 2h -tags "soak nomsgpack" -run Soak -v ./e2e/...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(GOFLAGS) $(PKGS)

clean:
	rm -rf bin
