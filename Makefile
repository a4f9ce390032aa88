# Liens — two commands: `make demo` and `make test`. Both install what they need.
#
# System packages come from apt-get when run as root; otherwise the exact command is printed.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.liens-installed

# pycairo (pulled by KivyMD 2) builds against cairo; Kivy tests need Xvfb and Mesa; browser tests
# need Debian's Chromium; broker tests need Mosquitto 2 and its dynamic security plugin; TURN
# tests need coturn.
SYSTEM_PACKAGES := libcairo2-dev pkg-config xvfb xauth libgl1-mesa-dri libgl1 libegl1 \
	chromium mosquitto mosquitto-clients coturn python3-venv libportaudio2 libspeexdsp1 espeak-ng

.PHONY: demo test lint unit system-deps venv clean help

help:
	@echo "make demo   run the whole system on this machine (broker, SQLite, demo home, kiosk)"
	@echo "make test   linters, then the test suite"

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = "0" ]; then \
			echo "Installing system packages:$$missing"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		else \
			echo "Liens needs these system packages. Run:"; \
			echo "  sudo apt-get install -y$$missing"; \
			exit 1; \
		fi; \
	fi

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Liens needs Python 3.11 or newer")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[kiosk,backend,dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	@$(MAKE) --no-print-directory system-deps
	$(PY) -m pytest -q -p no:cacheprovider --durations=20

demo: $(STAMP)
	@if [ -z "$$DISPLAY" ] && [ -z "$$WAYLAND_DISPLAY" ]; then \
		echo "No display: the kiosk window runs on a virtual screen (xvfb-run)."; \
		exec xvfb-run -a -s "-screen 0 1280x800x24" $(VENV)/bin/liens demo $(DEMO_ARGS); \
	else \
		exec $(VENV)/bin/liens demo $(DEMO_ARGS); \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info

# Every tablet screen in French and English at 1280x800 and 1920x1200 (10"), into docs/screens/.
.PHONY: screenshots
screenshots: $(STAMP)
	@$(MAKE) --no-print-directory system-deps
	$(PY) -m tests.ui.screenshots
