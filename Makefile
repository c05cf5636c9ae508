# mlgate build, run, test and benchmark entry points. `make run` and `make test` are the quick start.
GO      ?= go
# File sizes of the throughput benchmark. `or` cannot hold this default: it splits on the comma.
SIZES ?= 1GiB,4GiB
# The oras CLI of the OCI benchmark; the end-to-end test pins the same (cmd/mlgate/oci_e2e_test.go).
ORAS_VERSION ?= v1.3.6
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build run test reliability bench fuzz vet lint clean screenshots

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/mlgate ./cmd/mlgate

# Serves on embedded defaults: bbolt metadata and local blobs under ./mlgate-data, on 127.0.0.1:5000.
run: build
	./bin/mlgate serve

# Every test, race detector on. Tests that need a built binary build it themselves.
test: vet
	$(GO) test -race -count=1 -timeout 30m ./...

# The second vet compiles the reliability suite, which no other target builds, so that it cannot rot.
vet:
	$(GO) vet ./...
	$(GO) vet -tags reliability ./cmd/mlgate/
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The reliability suite against a real mlgate: load (200 clients, MLGATE_LOAD_DURATION, 60s by default),
# SIGKILL during mixed load, MinIO stopped mid-transfer (needs MLGATE_TEST_MINIO_BIN). Slow: not in `make test`.
reliability:
	$(GO) test -tags reliability -count=1 -run 'TestReliability' -timeout 20m -v ./cmd/mlgate/

# Throughput of the gateway against a same-run baseline, and its peak RSS, at 1 GiB and 4 GiB; the S3
# backends (in process and as a plugin) against direct minio-go on MinIO and versitygw; `mlgate import
# mlflow` of 1000 runs from a local mlgate against a --read-only baseline, and of one IMPORT_BIG file
# (1GiB by default; 0 skips it) with the importer's peak RSS; 1 GiB pulled by oras (installed from the
# module proxy at ORAS_VERSION) against a direct download of the same file, with mlgate's peak RSS. With
# MLGATE_TEST_POSTGRES_DSN set (eval "$(.ci/postgres.sh start)"), also the MLflow figures on PostgreSQL
# beside bbolt's, and 32 clients logging through one replica and through two on one PostgreSQL; without it
# those parts say they are skipped. Last, 1 GiB downloaded from MinIO through mlgate and by redirect, with
# serve's CPU seconds per GiB (needs the S3 servers: eval "$(.ci/s3-servers.sh start)").
bench: build
	$(GO) build -o bin/mlgate-backend ./cmd/mlgate-backend
	GOBIN=$(CURDIR)/bin GOWORK=off $(GO) install oras.land/oras/cmd/oras@$(ORAS_VERSION)
	$(GO) run ./cmd/mlgate-bench -mlgate bin/mlgate -backend bin/mlgate-backend -sizes $(SIZES) -candidates $(or $(CANDIDATES),100000) \
	  -import-big $(or $(IMPORT_BIG),1GiB) -postgres-dsn "$(MLGATE_TEST_POSTGRES_DSN)"
	$(GO) test -run '^$$' -bench BenchmarkModelPage -benchtime 20x ./gateway/ui/
	MLGATE_BENCH_REDIRECT=1 $(GO) test -count=1 -run '^TestRedirectDownloadFigure$$' -v ./cmd/mlgate/ | grep -v '^=== '

# Regenerates the README's screenshots with headless Chromium against a real mlgate.
screenshots:
	./.ci/install-chromium.sh
	MLGATE_SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run '^TestUI(InBrowser|LoggedModelsAndMLflowLinksInBrowser)$$' -v ./cmd/mlgate/

# A bounded fuzzing pass over every fuzz target (the seed corpora already run in `make test`):
# FUZZTIME per target, 20s by default; CI runs a short pass with FUZZTIME=5s. A target that fails with a
# bare "context deadline exceeded" and no failing input is run once more: that is a race in Go's fuzzing
# coordinator when -fuzztime ends on a loaded machine (golang/go#75804), not a finding. Any other failure,
# or the same one twice, fails.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    for try in 1 2; do \
	      out=$$($(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(or $(FUZZTIME),20s) $$pkg 2>&1) && { echo "$$out"; break; }; \
	      echo "$$out"; \
	      if [ $$try = 1 ] && echo "$$out" | grep -q 'context deadline exceeded' && ! echo "$$out" | grep -q 'Failing input written'; then \
	        echo "$$t: Go's fuzzing deadline race, not a finding; running it once more"; continue; \
	      fi; \
	      exit 1; \
	    done; \
	  done; \
	done

lint:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 -tags reliability ./...

clean:
	rm -rf bin .bench
