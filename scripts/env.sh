# shellcheck shell=bash
# Which Python environment mmc-sweep installs into and runs from. Sourced by scripts/install.sh,
# scripts/run-default.sh and scripts/python, so all three always agree. In this order:
#   1. an active virtual environment ($VIRTUAL_ENV)         -> install there
#   2. an active conda environment ($CONDA_PREFIX)           -> install there
#   3. otherwise the project's own ./.venv                   -> reuse it, or create it with `${PYTHON:-python3} -m venv`
# The interpreter's own site-packages are never touched: no --break-system-packages, no sudo. That is what
# makes a distribution's "externally managed" Python (PEP 668, every current Debian/Ubuntu) work.

# mmc_choose_env ROOT: decide, without creating or installing anything. Sets
#   MMC_ENV_KIND  venv | conda | project-venv
#   MMC_ENV_DIR   the environment's prefix (for project-venv: ROOT/.venv)
#   MMC_PY        its python (may not exist yet when MMC_ENV_NEW=1)
#   MMC_ENV_NEW   1 when ROOT/.venv must be created first, else 0
#   MMC_BASE_PY   for a new .venv: the interpreter that creates it (${PYTHON:-python3}, resolved on PATH)
# Warnings (a stale $VIRTUAL_ENV, a conda env without python) go to stderr.
mmc_choose_env() {
  local root=$1
  MMC_ENV_NEW=0
  MMC_BASE_PY=
  if [ -n "${VIRTUAL_ENV:-}" ]; then
    if [ -x "$VIRTUAL_ENV/bin/python" ]; then
      MMC_ENV_KIND=venv MMC_ENV_DIR=$VIRTUAL_ENV MMC_PY=$VIRTUAL_ENV/bin/python
      return 0
    fi
    echo "mmc-sweep: warning: VIRTUAL_ENV=$VIRTUAL_ENV has no bin/python (a stale activation?); ignoring it" >&2
  fi
  if [ -n "${CONDA_PREFIX:-}" ]; then
    if [ -x "$CONDA_PREFIX/bin/python" ]; then
      MMC_ENV_KIND=conda MMC_ENV_DIR=$CONDA_PREFIX MMC_PY=$CONDA_PREFIX/bin/python
      return 0
    fi
    echo "mmc-sweep: warning: the active conda env $CONDA_PREFIX has no python (conda install python); ignoring it" >&2
  fi
  MMC_ENV_KIND=project-venv MMC_ENV_DIR=$root/.venv MMC_PY=$root/.venv/bin/python
  if [ ! -x "$MMC_PY" ]; then
    MMC_ENV_NEW=1
    MMC_BASE_PY=$(command -v "${PYTHON:-python3}" 2>/dev/null || true)
  fi
}

# mmc_env_name: how to name the chosen environment in one line of output.
mmc_env_name() {
  case $MMC_ENV_KIND in
    venv) echo "the active virtual environment $MMC_ENV_DIR" ;;
    conda) echo "the active conda env ${CONDA_DEFAULT_ENV:-$(basename "$MMC_ENV_DIR")} ($MMC_ENV_DIR)" ;;
    project-venv) echo "the project's virtual environment ./.venv" ;;
  esac
}

# mmc_activate: what `activate` would do, for this process and its children (Ray workers, `mlflow`, `ray`).
mmc_activate() {
  PATH="$MMC_ENV_DIR/bin:$PATH"
  export PATH
  if [ "$MMC_ENV_KIND" = project-venv ]; then
    VIRTUAL_ENV=$MMC_ENV_DIR
    export VIRTUAL_ENV
  fi
}
