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
# The control plane: metrics (/metrics) and the web console (/), on loopback.
CONTROL_PORT ?= 9644
STAMP := $(VENV)/.installed
# make compat BOOTSTRAP=host:port runs the compatibility suite against that broker; REAL_KAFKA=1 against a
# real Apache Kafka 4 started from Maven Central's jars (no Docker; REAL_KAFKA=docker: testcontainers, where
# a Docker engine runs), then writes the side-by-side report of kbroker and Kafka.
BOOTSTRAP ?= $(KBROKER_BOOTSTRAP)
BENCH_ARGS ?=

.PHONY: run test unit compat compat-kafka bench fuzz gen install bytecode clean kafka-jars conformance conformance-record

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,fast]'
	touch $(STAMP)

# PostgreSQL's server too: the tests of brokers as processes coordinated through it start throwaway ones.
install: $(STAMP)
	sh tools/postgres_setup.sh

# kbroker's bytecode, written even where PYTHONDONTWRITEBYTECODE is set (an editable install compiles
# nothing): every broker the tests start, and `make run`, then import without compiling (0.35 s -> 0.13 s
# from a fixture's start to its first answered Metadata, bench/fixture_start.py). Only changed files recompile.
bytecode: $(STAMP)
	@$(PY) -m compileall -q kbroker

run: bytecode
	$(VENV)/bin/kbroker serve --host $(HOST) --port $(PORT) --data-dir $(DATA) --control-port $(CONTROL_PORT) --schema-registry-port $(SCHEMA_REGISTRY_PORT)

gen: $(STAMP)
	$(PY) tools/gen.py

# The whole suite: the generated codec is current, the unit and integration tests (the conformance suite
# among them), the compatibility matrix against a kbroker the suite starts itself, then against Apache
# Kafka 4 from Maven Central's jars with both side by side (skipped, saying why, without Java or the jars).
# In make test the Kafka matrix is the reference column of the side-by-side report: a cell that fails
# against Kafka (a client's own race with a just-created topic has, once, under load) is shown there and
# said here, but does not fail the suite; kbroker's own matrix and the conformance suite do.
# make compat-kafka and make compat REAL_KAFKA=1 fail on it.
test: unit compat
	@$(MAKE) --no-print-directory compat-kafka || echo "make test: the matrix against Apache Kafka had failures (above; compat-tests/report/compat-side-by-side.md); not counted against kbroker"

# Apache Kafka's jars for the differential conformance suite and REAL_KAFKA=1, fetched once with Maven into
# ~/.cache/kbroker (KBROKER_KAFKA_CACHE). Without Java or Maven this says why and the live tests skip.
kafka-jars: $(STAMP)
	-@$(PY) -m kbroker.conformance.realkafka --fetch-only

# kbroker against Apache Kafka's recorded answers (CONFORMANCE_BOOTSTRAP=host:port scores another broker);
# without it, kbroker against a real Kafka started now: one broker, then the cluster scenarios with a Kafka
# of three brokers and a controller against a kbroker cluster of three (--cluster).
# conformance-record refreshes both recordings from a real Kafka (after changing the pinned release).
conformance: bytecode
ifneq ($(CONFORMANCE_BOOTSTRAP),)
	$(VENV)/bin/kbroker conformance $(CONFORMANCE_BOOTSTRAP)
else
	$(PY) -m kbroker.conformance live
	$(PY) -m kbroker.conformance live --cluster
endif

conformance-record: bytecode
	$(PY) -m kbroker.conformance record
	$(PY) -m kbroker.conformance record --cluster

unit: bytecode kafka-jars
	sh tools/browser_setup.sh
	sh tools/postgres_setup.sh
	$(PY) tools/gen.py --check
	$(PY) -m pytest -n 2 -q -p no:warnings tests

# The matrix against real Kafka (REAL_KAFKA=1 starts it from the jars), then the side-by-side report from
# this run and the last kbroker run (report/compat.json), written whether or not a cell failed.
COMPAT_KAFKA = if $(PY) -m kbroker.conformance.realkafka --fetch-only; then \
	  REAL_KAFKA=1 $(PY) -m pytest -q -p no:warnings -n 2 compat-tests; rc=$$?; \
	  $(PY) compat-tests/kcompat/report.py --side-by-side compat-tests/report; exit $$rc; \
	else echo "compat-kafka: skipped: Apache Kafka cannot be started here (the reason is above)"; fi

compat: bytecode
	bash compat-tests/setup.sh
ifeq ($(REAL_KAFKA),docker)
	$(PY) -m pip install -q 'testcontainers[kafka]'
	REAL_KAFKA=docker $(PY) -m pytest -q -p no:warnings compat-tests
else ifneq ($(BOOTSTRAP),)
	$(PY) -m pytest -q -p no:warnings -n 2 compat-tests --bootstrap $(BOOTSTRAP) $(if $(TARGET),--target-name $(TARGET))
else
	REAL_KAFKA= $(PY) -m pytest -q -p no:warnings -n 2 compat-tests
ifneq ($(REAL_KAFKA),)
	@$(COMPAT_KAFKA)
endif
endif

compat-kafka: bytecode
	bash compat-tests/setup.sh
	@$(COMPAT_KAFKA)

# The fuzz suite at length (tests/integration/test_fuzz.py): frames generated from the schemas and mutated, against the
# decoder and a running broker. `make test` runs the same tests with a bounded example count;
# FUZZ_EXAMPLES sets how many here.
FUZZ_EXAMPLES ?= 20000
fuzz: bytecode
	HYPOTHESIS_PROFILE=fuzz KBROKER_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:warnings -x \
		-o timeout=0 tests/integration/test_fuzz.py

bench: $(STAMP)
	$(PY) -m pip install -q -r bench/requirements.txt
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data
