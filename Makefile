# sciclip: `make book` runs the whole study (tiny profile) and builds the book; `make test` runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= tiny
STAMP := $(VENV)/.installed-stamp

.PHONY: book notebooks test lint lab clean system-deps browser-deps venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (sciclip)" >/dev/null
	touch $(STAMP)

venv: $(STAMP)

# System packages: Ghostscript renders EPS/PS figures (always run with -dSAFER).
system-deps:
	@command -v gs >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq ghostscript; \
	  elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq ghostscript; \
	  else echo "Ghostscript (gs) is missing: install the 'ghostscript' package" >&2; exit 1; fi; }

# Headless Chromium for the browser test of the built book (tests/test_book_browser.py); selenium is a dev extra.
browser-deps:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver; \
	  elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq chromium chromium-driver; \
	  else echo "Chromium is missing: install the 'chromium' and 'chromium-driver' packages" >&2; exit 1; fi; }

book: system-deps $(STAMP)
	$(BIN)/sciclip notebooks --profile $(PROFILE)
	@echo "book: $(CURDIR)/_build/html/index.html"

notebooks: system-deps $(STAMP)
	$(BIN)/sciclip notebooks --profile $(PROFILE) --no-build

test: system-deps $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Interactive runs write under runs/lab/<profile>, never into the book's runs/<profile>.
lab: $(STAMP)
	SCICLIP_RUNS=$${SCICLIP_RUNS:-$(CURDIR)/runs/lab} $(BIN)/jupyter lab notebooks/

clean:
	rm -rf _build book/*.ipynb book/reference_*.md runs
