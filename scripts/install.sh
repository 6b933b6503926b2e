#!/usr/bin/env bash
# Install mmc-sweep and its dependencies into the current Python environment (a venv is recommended).
# CPU PyTorch by default: a plain `pip install torch` on Linux pulls a multi-GB CUDA build.
#   TORCH_SPEC="torch" scripts/install.sh        # e.g. keep/choose a CUDA build on a GPU machine
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  if [ -n "${TORCH_SPEC:-}" ]; then
    "$PY" -m pip install -q "$TORCH_SPEC"
  else
    # torch==2.13.0 is the CPU wheel cached on the project's machines; elsewhere use PyTorch's CPU index.
    "$PY" -m pip install -q "torch==2.13.0" 2>/dev/null \
      || "$PY" -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi
"$PY" -m pip install -q -e ".[test]"
"$PY" -c "import torch, ray, mlflow, pyarrow; print(f'installed: torch {torch.__version__}, ray {ray.__version__}, mlflow {mlflow.__version__}, pyarrow {pyarrow.__version__}')"
