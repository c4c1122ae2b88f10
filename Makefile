# modelgate: build, test and demo.
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build test lint clean

## build: the modelgate binary into bin/
build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/modelgate ./cmd/modelgate

## test: formatting, vet, and every test with the race detector
test: lint
	$(GO) test -race -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin/
