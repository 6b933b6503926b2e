#!/usr/bin/env bash
# Install (scripts/install.sh: the active venv/conda env, else ./.venv), then run the built-in default sweep
# (digits, small_cnn, 3 seeds; a few minutes on 2 CPUs) with that environment's python: `mmc-sweep run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# shellcheck source=scripts/env.sh
. scripts/env.sh
mmc_choose_env "$(pwd)"
mmc_activate
rc=0
"$MMC_PY" -m orchestrator run "$@" || rc=$?   # = mmc-sweep run
if [ "$MMC_ENV_KIND" = project-venv ]; then
  echo "mmc-sweep: the \`mlflow\` and \`mmc-sweep\` commands are in ./.venv: run \`. .venv/bin/activate\` first in this shell (or prefix them with .venv/bin/)"
fi
exit "$rc"
