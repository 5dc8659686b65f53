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
# pytest keeps the test modules it rewrote for assertions (and the plugins', Hypothesis's whole package
# among them) in __pycache__ only where bytecode may be written; with PYTHONDONTWRITEBYTECODE set, every
# pytest process (each xdist worker, each compat run, each nested pytest of the plugin tests) rewrote them
# all again: 14 s of CPU per process to collect tests/, 4 s once they are kept.
export PYTHONDONTWRITEBYTECODE :=
# make compat BOOTSTRAP=host:port runs the compatibility suite against that broker; REAL_KAFKA=1 against a
# real Apache Kafka 4 started from Maven Central's jars (no Docker; REAL_KAFKA=docker: testcontainers, where
# a Docker engine runs), then writes the side-by-side report of kbroker and Kafka.
BOOTSTRAP ?= $(KBROKER_BOOTSTRAP)
BENCH_ARGS ?=

.PHONY: run test unit compat compat-kafka bench fuzz gen install bytecode clean kafka-jars conformance conformance-record

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
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
#
# CI runs it from a clean clone on 2 cores (.ci/run), so it runs what is independent side by side:
# 1. the installs: the virtualenv, kbroker's bytecode and Kafka's jars beside the system packages and the
#    compatibility suite's clients (npm, Go, Maven: compat-tests/setup.sh, which the Java tests of the unit
#    suite then find built);
# 2. the unit and integration tests, two workers that share the work to the end (--dist worksteal);
# 3. the two compatibility matrices at once, against kbroker and against Apache Kafka, each printed whole
#    when it ends (make -O), then the side-by-side report.
# The first failure stops it (exit status non-zero), as a failing kbroker matrix does once both have ended.
test:
	@$(MAKE) --no-print-directory -j2 -O test-installs
	@$(MAKE) --no-print-directory unit-tests
	@$(MAKE) --no-print-directory -j2 -O compat-matrix compat-kafka-reference; rc=$$?; $(SIDE_BY_SIDE); exit $$rc

.PHONY: test-installs test-system-packages unit-tests compat-matrix compat-kafka-reference
test-installs: bytecode kafka-jars test-system-packages

# One after the other: each may run apt-get.
test-system-packages:
	sh tools/browser_setup.sh
	sh tools/postgres_setup.sh
	bash compat-tests/setup.sh

# Apache Kafka's jars for the differential conformance suite and REAL_KAFKA=1, fetched once with Maven into
# ~/.cache/kbroker (KBROKER_KAFKA_CACHE). Without Java or Maven this says why and the live tests skip.
kafka-jars: $(STAMP)
	-@$(PY) -m kbroker.conformance.realkafka --fetch-only

# kbroker against Apache Kafka's recorded answers (CONFORMANCE_BOOTSTRAP=host:port scores another broker);
# conformance-record refreshes the recording from a real Kafka (after changing the pinned release).
conformance: bytecode
ifneq ($(CONFORMANCE_BOOTSTRAP),)
	$(VENV)/bin/kbroker conformance $(CONFORMANCE_BOOTSTRAP)
else
	$(PY) -m kbroker.conformance live
endif

conformance-record: bytecode
	$(PY) -m kbroker.conformance record

unit: bytecode kafka-jars
	sh tools/browser_setup.sh
	sh tools/postgres_setup.sh
	@$(MAKE) --no-print-directory unit-tests

# --dist worksteal: xdist's default (load) gives each worker a first run of a quarter of the suite, in
# collection order, and never takes it back: one worker had nearly every integration and process test and
# worked alone for most of the run while the other, done with the unit tests, waited (busy 175 s of 1,610 s
# in a clean-clone CI). A worker that runs out takes half of what the other has left. The slowest tests are
# named at the end (--durations), to see where the suite's time goes.
unit-tests:
	$(PY) tools/gen.py --check
	$(PY) -m pytest -n 2 --dist worksteal -q -p no:warnings --durations=25 tests

# The matrix against kbroker (started by the suite) and against real Kafka (REAL_KAFKA=1 starts it from the
# jars); COMPAT_KAFKA then writes the side-by-side report from this run and the last kbroker run
# (report/compat.json), whether or not a cell failed.
KBROKER_MATRIX = REAL_KAFKA= $(PY) -m pytest -q -p no:warnings -n 2 compat-tests
KAFKA_MATRIX = REAL_KAFKA=1 $(PY) -m pytest -q -p no:warnings -n 2 compat-tests
KAFKA_STARTS = $(PY) -m kbroker.conformance.realkafka --fetch-only
NO_KAFKA = echo "compat-kafka: skipped: Apache Kafka cannot be started here (the reason is above)"
SIDE_BY_SIDE = $(PY) compat-tests/kcompat/report.py --side-by-side compat-tests/report
COMPAT_KAFKA = if $(KAFKA_STARTS); then $(KAFKA_MATRIX); rc=$$?; $(SIDE_BY_SIDE); exit $$rc; else $(NO_KAFKA); fi

# make test's halves of it, run side by side; the Kafka matrix's failures are said, not counted.
compat-matrix:
	$(KBROKER_MATRIX)

compat-kafka-reference:
	@if $(KAFKA_STARTS); then $(KAFKA_MATRIX) || echo "make test: the matrix against Apache Kafka had \
	failures (above; compat-tests/report/compat-side-by-side.md); not counted against kbroker"; else $(NO_KAFKA); fi

compat: bytecode
	bash compat-tests/setup.sh
ifeq ($(REAL_KAFKA),docker)
	$(PY) -m pip install -q 'testcontainers[kafka]'
	REAL_KAFKA=docker $(PY) -m pytest -q -p no:warnings compat-tests
else ifneq ($(BOOTSTRAP),)
	$(PY) -m pytest -q -p no:warnings -n 2 compat-tests --bootstrap $(BOOTSTRAP) $(if $(TARGET),--target-name $(TARGET))
else
	$(KBROKER_MATRIX)
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
