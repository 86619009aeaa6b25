# Backdrop: `make demo` and `make test` are all a fresh Debian machine needs.
SHELL := /bin/bash
.DEFAULT_GOAL := test

# Fetched assets and the Python reference environment live outside the clone, keyed by version.
CACHE ?= $(HOME)/.cache/backdrop
PY_REQUIREMENTS := tools/requirements.txt
VENV := $(CACHE)/venv-$(shell sha256sum $(PY_REQUIREMENTS) 2>/dev/null | cut -c1-12)
PY := $(VENV)/bin/python
export BACKDROP_PYTHON := $(PY)
export BACKDROP_CACHE := $(CACHE)

APT_PACKAGES := libtorch-dev libhdf5-dev libpng-dev libjpeg-dev libsqlite3-dev python3-torch python3-venv python3-pip python3-pil
SWIFT_BUILD_FLAGS ?=
RELEASE := -c release

.PHONY: setup apt venv build test demo bench fixtures clean

setup: apt venv

# Installs only what is missing; silent when everything is present.
apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Python reference side (Debian's torch 1.13 plus pinned PyPI packages, checked by hash).
venv: $(VENV)/.ready
$(VENV)/.ready: $(PY_REQUIREMENTS) | apt
	@echo "creating the Python reference environment in $(VENV)"
	@/usr/bin/python3 -m venv --system-site-packages $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps --require-hashes -r $(PY_REQUIREMENTS)
	@touch $@

build: setup
	swift build $(SWIFT_BUILD_FLAGS)

test: setup
	swift build --build-tests $(SWIFT_BUILD_FLAGS)
	swift test --skip-build --disable-swift-testing $(SWIFT_BUILD_FLAGS)

demo: build
	swift run $(SWIFT_BUILD_FLAGS) backdrop info

# Swift against PyTorch eager on the same LibTorch and thread count; prints ratios.
BENCH_THREADS ?= 2
bench: setup
	swift build $(RELEASE) --product backdrop-bench
	.build/release/backdrop-bench --threads $(BENCH_THREADS) --python $(PY)

# Regenerates the committed test fixtures from the Python reference.
fixtures: setup
	$(PY) tools/make_op_fixtures.py
	$(PY) tools/make_serialization_fixtures.py
	$(PY) tools/make_nn_fixtures.py

clean:
	rm -rf .build
