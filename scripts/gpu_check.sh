#!/usr/bin/env bash
# CUDA checks and GPU benchmarks in one prepared run (under 8 minutes on one H100):
#   1. the CUDA tests (compiled PPO/DQN with CUDA graphs equal eager; compiled evaluation);
#   2. eager vs compile=True PPO and DQN on MinAtar/Breakout at 4096 envs (the issue's
#      GPU target: PPO >= 1M steps/s for one seed at >= 2048 envs), JSON + table.
# Usage: scripts/gpu_check.sh [OUTDIR]   (default gpu_check_out/; record the card in docs/benchmarks.md)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check_out}
PY=${PYTHON:-python}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
status=0
timeout 200 $PY -m pytest -p no:xdist -q -rs tests/agents/test_compile.py -k cuda 2>&1 | tee "$OUT/tests.txt" || status=1
timeout 240 $PY scripts/bench_compile.py --device cuda --threads 4 --envs MinAtar/Breakout --algos ppo,dqn \
    --num-envs 4096 --rounds 3 --round-steps 2097152 --out "$OUT/bench_compile_cuda.json" 2>&1 | tee "$OUT/bench.txt" || status=1
exit $status
