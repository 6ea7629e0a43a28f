# A thin front door over CMake. The README's two commands:
#   make run     install what is missing, build, serve the shipped model on :8080
#   make test    install what is missing, build, run the whole test suite
# DIGITD_MNIST_DIR points the tests at MNIST (default: data/mnist, filled by
# scripts/fetch-mnist.sh); without it the two MNIST tests report "Skipped".

BUILD     ?= build
ASAN_BUILD ?= build-asan
JOBS      ?= $(shell nproc)
WERROR    ?= OFF
PORT      ?= 8080
export DIGITD_MNIST_DIR ?= $(if $(wildcard data/mnist/*),$(CURDIR)/data/mnist,)

.PHONY: all deps test-deps build run test test-sanitize test-docker bench fuzz clean

all: build

deps:
	@scripts/install-deps.sh build

test-deps:
	@scripts/install-deps.sh test
	@cd tests/browser && { [ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund; }

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DDIGITD_WERROR=$(WERROR) \
	      -DDIGITD_MNIST_DIR="$(DIGITD_MNIST_DIR)"
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/digitd serve --port $(PORT) --model models/default.model --web-root web

test: test-deps build
	ctest --test-dir $(BUILD) --output-on-failure -j 2

# The same unit and HTTP tests built with AddressSanitizer and UBSan.
test-sanitize: test-deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DDIGITD_WERROR=$(WERROR) \
	      -DDIGITD_SANITIZE=address,undefined -DDIGITD_MNIST_DIR="$(DIGITD_MNIST_DIR)"
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ctest --test-dir $(ASAN_BUILD) --output-on-failure -L 'unit|http' -j 2

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
