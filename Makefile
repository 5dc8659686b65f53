# Every target installs what it needs first, so a fresh machine runs `make run` or `make test` as is.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 9092
# make run serves the Schema Registry beside the broker on this port (8081, Confluent's default); the
# broker itself serves none unless asked (kbroker serve --schema-registry-port N).
SCHEMA_REGISTRY_PORT ?= 8081
DATA ?= ./data
STAMP := $(VENV)/.installed
# make compat BOOTSTRAP=host:port runs the compatibility suite against that broker; REAL_KAFKA=1 against a
# real Kafka in Docker (skipped with a reason when there is no Docker engine).
BOOTSTRAP ?= $(KBROKER_BOOTSTRAP)
BENCH_ARGS ?=

.PHONY: run test unit compat bench gen install bytecode clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,fast]'
	touch $(STAMP)

install: $(STAMP)

# kbroker's bytecode, written even where PYTHONDONTWRITEBYTECODE is set (an editable install compiles
# nothing): every broker the tests start, and `make run`, then import without compiling (0.35 s -> 0.13 s
# from a fixture's start to its first answered Metadata, bench/fixture_start.py). Only changed files recompile.
bytecode: $(STAMP)
	@$(PY) -m compileall -q kbroker

run: bytecode
	$(VENV)/bin/kbroker serve --host $(HOST) --port $(PORT) --data-dir $(DATA) --schema-registry-port $(SCHEMA_REGISTRY_PORT)

gen: $(STAMP)
	$(PY) tools/gen.py

# The whole suite: the generated codec is current, the unit and integration tests, then the
# compatibility matrix against a kbroker the suite starts itself.
test: unit compat

unit: bytecode
	$(PY) tools/gen.py --check
	$(PY) -m pytest -n 2 -q -p no:warnings tests

compat: bytecode
	bash compat-tests/setup.sh
ifneq ($(REAL_KAFKA),)
	$(PY) -m pip install -q 'testcontainers[kafka]'
	REAL_KAFKA=1 $(PY) -m pytest -q -p no:warnings compat-tests
else ifneq ($(BOOTSTRAP),)
	$(PY) -m pytest -q -p no:warnings -n 2 compat-tests --bootstrap $(BOOTSTRAP) $(if $(TARGET),--target-name $(TARGET))
else
	$(PY) -m pytest -q -p no:warnings -n 2 compat-tests
endif

bench: $(STAMP)
	$(PY) -m pip install -q -r bench/requirements.txt
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data
