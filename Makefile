# Trolley: `make demo` serves the demo school; `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CHROMIUM ?= /usr/bin/chromium
AXE_DIR := tests/browser/axe
AXE     := $(AXE_DIR)/node_modules/axe-core/axe.min.js
# Hundreds of Python processes start during a test run (servers, workers, kiosks, commands):
# where the environment forbids writing compiled modules, each would compile every module again.
unexport PYTHONDONTWRITEBYTECODE

# Most tests wait on sockets (databases, brokers, a browser), and the broker's ten-minute
# memory-bound test mostly waits: four processes keep both cores busy meanwhile. The longest
# tests start first, each at the head of a process's share (tests/conftest.py).
TEST_PROCESSES ?= 4

.PHONY: demo test lint types unit install chromium axe bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Trolley needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Browser tests use Debian's Chromium, never a browser download; the kiosk's runs under Xvfb.
chromium:
	@if [ ! -x "$(CHROMIUM)" ] || ! command -v Xvfb >/dev/null; then \
	  echo "Installing Debian's chromium and xvfb for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium xvfb; \
	fi

# axe-core from the npm registry, at the version package-lock.json pins; the browser tests run it
# in Chromium on the pages they visit.
$(AXE): $(AXE_DIR)/package.json $(AXE_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "The accessibility checks need Node.js 20 and npm"; exit 1; }
	npm ci --prefix $(AXE_DIR) --no-audit --no-fund --loglevel=error
	@touch $@

axe: $(AXE)

demo: $(STAMP)
	$(BIN)/trolley demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check server device_profiles kiosk_client mqtt provisioning

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m "not browser and not slow"

test: $(STAMP) chromium $(AXE) lint types
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist worksteal --durations=15

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache $(AXE_DIR)/node_modules
