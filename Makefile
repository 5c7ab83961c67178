# Trolley: `make demo` serves the demo school; `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CHROMIUM ?= /usr/bin/chromium
# Most tests wait on sockets (databases, brokers, a browser), so two processes fit two cores.
TEST_PROCESSES ?= 2

.PHONY: demo test lint types unit install chromium bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Trolley needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Browser tests use Debian's Chromium, never a browser download.
chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  echo "Installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; \
	fi

demo: $(STAMP)
	$(BIN)/trolley demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check server device_profiles kiosk_client mqtt provisioning

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m "not browser and not slow"

test: $(STAMP) chromium lint types
	$(BIN)/pytest -n $(TEST_PROCESSES) --durations=15

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
