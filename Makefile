# Two entry points for a fresh machine: `make run` (main job) and `make test` (whole suite).
# The virtual environment sees the system's site-packages, so a torch you already
# installed (CUDA or not) is kept; torch==2.13.0 is installed only when none imports.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
PYTEST_ARGS ?= -n 2
RUN_LOGDIR ?= runs/main

.PHONY: venv install run test bench clean

$(PY):
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

venv: $(PY)

install: $(PY)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -e ".[dev,sb3]"

run: install
	$(PY) -m normrl.cli norms
	$(PY) -m normrl.cli nap-demo --logdir $(RUN_LOGDIR)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs *.egg-info
