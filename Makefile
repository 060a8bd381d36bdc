# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The genuine MNIST files sit in ../shared/data beside a checkout; use them unless told otherwise.
ifeq ($(origin CREDITLAB_DATA), undefined)
  ifneq ($(wildcard ../shared/data),)
    export CREDITLAB_DATA := $(abspath ../shared/data)
  endif
endif

.PHONY: install test demo lint format bench clean

install: $(STAMP)

# CPU torch first (a file pip finds on this machine; no multi-GB CUDA build), then the project.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	# dev, and the extras the tests need: Ray (the sweep's Ray backend), TensorBoard (--tensorboard).
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,distributed,tensorboard]' torch==2.13.0
	# The peer the compare tests check FA against: BioTorch's layers need only torch; its
	# declared dependencies (jupyter, tensorboard, torchvision, ...) would add gigabytes.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps biotorch==0.0.16
	# The data root this make saw is remembered in .venv, so `creditlab` finds it after
	# `source .venv/bin/activate` alone.
	$(if $(CREDITLAB_DATA),$(BIN)/creditlab data remember "$(CREDITLAB_DATA)")
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check creditlab tests benchmarks scripts
	$(BIN)/ruff format --check creditlab tests benchmarks scripts

format: $(STAMP)
	$(BIN)/ruff format creditlab tests benchmarks scripts
	$(BIN)/ruff check --fix creditlab tests benchmarks scripts

test: lint
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/creditlab demo

bench: $(STAMP)
	# torch pinned: a peer's newest release may ask for a newer torch, which pip would fetch as
	# the multi-GB CUDA build over our CPU one (spikingjelly/snntorch did so once).
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]' torch==2.13.0
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info
