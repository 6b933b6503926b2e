#!/usr/bin/env bash
# Install, then run the built-in default sweep (digits, small_cnn, 3 seeds; a few minutes on 2 CPUs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec "${PYTHON:-python3}" -m orchestrator run "$@"   # = mmc-sweep run
