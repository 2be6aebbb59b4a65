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

.PHONY: check run test test-fast test-latest chaos install ui-test lock lock-upgrade ui browser services demo bench clean

run: install ui
	$(BIN)/campaign-canvas migrate
	$(BIN)/campaign-canvas demo
	$(BIN)/campaign-canvas serve

# The whole suite, as CI runs it: the code's own checks, both databases, real processes,
# the browser.
test: install ui ui-test browser services check
	$(BIN)/pytest

# Imports go one way (.importlinter), lint (pyproject.toml [tool.ruff]), types (setup.cfg [mypy]).
check: install
	$(BIN)/lint-imports
	$(BIN)/ruff check engine nodes server.py tests bench examples
	$(BIN)/mypy

# The edit-test loop: SQLite only, no browser, no real serve/worker/dispatcher processes.
test-fast: install ui-test services check
	CC_TEST_DATABASES=sqlite $(BIN)/pytest -m "not processes" --ignore=tests/browser -q

# The fault suite: killed workers and dispatchers, a flushed Redis, racing requests, forged
# webhooks; prints what should have happened once, what did, what twice, what never.
chaos: install services
	$(BIN)/pytest -m chaos

# The whole suite on the newest releases of every dependency, in a throwaway venv: an
# upstream release that breaks us shows here before a user installs it.
LATEST := $(shell mktemp -u /tmp/campaign-canvas-latest.XXXXXX)
test-latest: ui browser services
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip setuptools wheel
	$(LATEST)/bin/python -m pip install --quiet --upgrade -e '.[test]'
	$(LATEST)/bin/python -m pip list --format=freeze > $(LATEST)/versions.txt
	@echo "newest releases: $(LATEST)/versions.txt"
	$(LATEST)/bin/pytest -m "not locked"; status=$$?; rm -rf $(LATEST); exit $$status

# Exactly the locked set (hash-checked), then this project itself without its dependencies.
install: $(STAMP)

$(STAMP): requirements-dev.lock setup.cfg pyproject.toml examples/custom_node/setup.cfg
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	rm -rf campaign_canvas.egg-info  # an old build's metadata would hide the entry points
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

# requirements.lock: what the application runs on; requirements-dev.lock: that and the test
# and development tools, the set `make install` installs. `make lock` keeps every pin it can
# (after a change to setup.cfg); `make lock-upgrade` takes the newest release of everything.
LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links
lock: install
	$(BIN)/pip-compile $(LOCK_FLAGS) $(UPGRADE) --extra test --extra dev -o requirements-dev.lock setup.cfg
	$(BIN)/pip-compile $(LOCK_FLAGS) $(UPGRADE) -c requirements-dev.lock -o requirements.lock setup.cfg

lock-upgrade:
	$(MAKE) lock UPGRADE=--upgrade

# The browser canvas (canvas_ui/dist, served by server.py), rebuilt only when its sources changed.
ui: $(UI)/dist/index.html

$(UI)/dist/index.html: $(UI_STAMP) $(UI_SOURCES)
	@$(NEED_NPM)
	cd $(UI) && npm run check && npm run build
	touch $@

# The UI's pure modules (graph, clipboard, history, layout), unit-tested with Vitest.
ui-test: $(UI_STAMP)
	cd $(UI) && npm test --silent

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
	$(BIN)/python bench/reference_campaign.py

clean:
	rm -rf $(VENV) instance build *.egg-info test-artifacts $(UI)/dist $(UI)/node_modules
