# Two entry points for a fresh machine: `make run` (main job) and `make test` (whole suite).
# The virtual environment sees the system's site-packages, so a torch you already
# installed (CUDA or not) is kept; torch==2.13.0 is installed only when none imports.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
PYTEST_ARGS ?= -n 2
RUN_LOGDIR ?= runs/main-$(shell date +%Y%m%d-%H%M%S)
RUN_STEPS_PER_TASK ?= 131072

.PHONY: venv install run test clean

$(PY):
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

venv: $(PY)

install: $(PY)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -e ".[dev,sb3,ray]"

# Main job: PPO with Normalize-and-Project through the five MinAtar games in turn
# (built-in torch envs, no downloads), then the task-by-task return matrix.
run: install
	$(PY) -m normrl.cli continual --stream minatar --algo ppo --norm nap \
		--steps-per-task $(RUN_STEPS_PER_TASK) --eval-episodes 8 --seed 0 --device cpu --logdir $(RUN_LOGDIR)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs *.egg-info
