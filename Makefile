# Every target installs what it needs first, so a fresh machine runs `make run` or `make test` as is.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 9092
DATA ?= ./data
STAMP := $(VENV)/.installed

.PHONY: run test gen install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,fast]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/kbroker serve --host $(HOST) --port $(PORT) --data-dir $(DATA)

gen: $(STAMP)
	$(PY) tools/gen.py

test: $(STAMP)
	$(PY) tools/gen.py --check
	$(PY) -m pytest -n 2 -q tests

clean:
	rm -rf $(VENV) data
