# Two commands for a fresh machine:  make run  |  make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

UI       := canvas_ui
UI_STAMP := $(UI)/node_modules/.ci-stamp
# every source of the UI build; directories too, so a deleted file also means a rebuild
UI_SOURCES := $(UI)/package.json $(UI)/package-lock.json $(UI)/index.html $(UI)/vite.config.ts \
              $(UI)/tsconfig.json $(shell find $(UI)/src 2>/dev/null)
NEED_NPM := command -v npm >/dev/null 2>&1 || { echo "npm not found: install Node.js 20+ (https://nodejs.org) to build the UI" >&2; exit 1; }
CHROMIUM := /usr/bin/chromium
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test install ui browser services demo bench clean

run: install ui
	$(BIN)/campaign-canvas migrate
	$(BIN)/campaign-canvas demo
	$(BIN)/campaign-canvas serve

test: install ui browser services
	$(BIN)/pytest

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml examples/custom_node/setup.cfg
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The browser canvas (canvas_ui/dist, served by server.py), rebuilt only when its sources changed.
ui: $(UI)/dist/index.html

$(UI)/dist/index.html: $(UI_STAMP) $(UI_SOURCES)
	@$(NEED_NPM)
	cd $(UI) && npm run check && npm run build
	touch $@

# `npm ci` again only when the lock file is newer than the last install.
$(UI_STAMP): $(UI)/package-lock.json
	@$(NEED_NPM)
	cd $(UI) && npm ci --no-audit --no-fund
	touch $@

# The browser tests drive Debian's Chromium; never a browser downloaded any other way.
browser:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }

# The tests use this machine's PostgreSQL and Redis; start them when they are installed but down.
services:
	@$(BIN)/python scripts/services.py

bench: install
	$(BIN)/python bench/engine_throughput.py

clean:
	rm -rf $(VENV) instance build *.egg-info test-artifacts $(UI)/dist $(UI)/node_modules
