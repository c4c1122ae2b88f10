# modelgate: build, test and demo.
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build demo test lint clean

## build: modelgate and tinyllm into bin/
build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/modelgate ./cmd/modelgate
	$(GO) build -trimpath -o bin/tinyllm ./cmd/tinyllm

## demo: registry, push, serve and a streamed chat with the demo model (Ctrl-C stops it)
demo:
	./scripts/demo.sh

## test: formatting, vet, and every test with the race detector
test: lint
	$(GO) test -race -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin/
