#!/usr/bin/env bash
# Install mmc-sweep and its dependencies. Where (scripts/env.sh): the active virtual environment or conda env
# if there is one, else the project's own ./.venv, created on first use with `${PYTHON:-python3} -m venv`.
# A second run finds the install stamp (pyproject.toml, TORCH_SPEC, this checkout) and skips pip: seconds.
#   TORCH_SPEC="torch" bash scripts/install.sh    # choose another PyTorch (e.g. a CUDA build on a GPU machine);
#                                                 # default: the CPU build (a plain `pip install torch` on Linux
#                                                 # pulls a multi-GB CUDA build)
#   PYTHON=python3.12 bash scripts/install.sh      # the interpreter that creates ./.venv (default: python3)
#   MMC_INSTALL_DRY_RUN=1 bash scripts/install.sh  # print the environment and the action; change nothing
#   MMC_REINSTALL=1 bash scripts/install.sh        # run pip even when the stamp says it is up to date
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/env.sh
. scripts/env.sh
mmc_choose_env "$root"
dry=${MMC_INSTALL_DRY_RUN:-}
[ "$dry" = 0 ] && dry=

die() { echo "mmc-sweep: $*" >&2; exit 1; }

# `python -c` with the repository not on sys.path (run from /), so it sees only what is installed.
py_outside() { local py=$1; shift; (cd / && "$py" "$@"); }
VERSION_CHECK='import sys; v = sys.version_info; print("%d.%d.%d" % tuple(v[:3])); sys.exit(v[:2] < (3, 10))'
# argv: ROOT MODULE...; exit 0 when every module is importable and `orchestrator` is this checkout's.
FIND_SPEC_CHECK='
import importlib.util as u, os, sys
root, mods = os.path.realpath(sys.argv[1]), sys.argv[2:]
for m in mods:
    s = u.find_spec(m)
    if s is None or (m == "orchestrator" and not os.path.realpath(s.origin or "").startswith(root + os.sep)):
        sys.exit(1)'

stamp_file=$MMC_ENV_DIR/.mmc-sweep-install-stamp
stamp="mmc-sweep install stamp v1
checkout: $root
pyproject.toml: $(cksum < pyproject.toml)
TORCH_SPEC: ${TORCH_SPEC:-}"

# 1. The interpreter (and, for a new ./.venv, the one that creates it).
if [ "$MMC_ENV_NEW" = 1 ]; then
  [ -n "$MMC_BASE_PY" ] || die "no ${PYTHON:-python3} on PATH: install Python >= 3.10 (Debian/Ubuntu: apt install python3 python3-venv), or set PYTHON=/path/to/python3"
  base_version=$(py_outside "$MMC_BASE_PY" -c "$VERSION_CHECK") \
    || die "$MMC_BASE_PY is Python ${base_version:-?}; mmc-sweep needs >= 3.10: set PYTHON=/path/to/python3.10-or-newer"
  echo "mmc-sweep: no virtual environment is active, so installing into a new ./.venv (made by $MMC_BASE_PY, Python $base_version; that Python itself is left untouched)"
  action=create-venv,install
else
  version=$(py_outside "$MMC_PY" -c "$VERSION_CHECK") \
    || die "$MMC_PY (in $(mmc_env_name)) is Python ${version:-?}; mmc-sweep needs >= 3.10"
  if [ -z "${MMC_REINSTALL:-}" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] \
     && py_outside "$MMC_PY" -c "$FIND_SPEC_CHECK" "$root" torch ray mlflow pyarrow pytest orchestrator; then
    action=none
    echo "mmc-sweep: using $(mmc_env_name) (Python $version): already installed, pyproject.toml unchanged; skipping pip"
  else
    action=install
    echo "mmc-sweep: installing into $(mmc_env_name) (Python $version)"
  fi
fi

if [ -n "$dry" ]; then
  echo "mmc-sweep (dry run): env=$MMC_ENV_KIND dir=$MMC_ENV_DIR python=$MMC_PY base=${MMC_BASE_PY:--} action=$action"
  exit 0
fi
[ "$action" = none ] && exit 0

# 2. A new ./.venv.
if [ "$MMC_ENV_NEW" = 1 ]; then
  existed=0; [ -e "$MMC_ENV_DIR" ] && existed=1
  if ! "$MMC_BASE_PY" -m venv "$MMC_ENV_DIR"; then
    [ "$existed" = 0 ] && rm -rf "$MMC_ENV_DIR"   # only what this run started to make
    die "could not create ./.venv with $MMC_BASE_PY. On Debian/Ubuntu install the venv module first: sudo apt install python3-venv (or python3.X-venv for your version), then rerun. Or activate any virtual environment or conda env and rerun: mmc-sweep installs into it."
  fi
fi

# 3. pip itself (venvs made by `uv venv` or `--without-pip` have none).
if ! py_outside "$MMC_PY" -m pip --version >/dev/null 2>&1; then
  py_outside "$MMC_PY" -m ensurepip --upgrade >/dev/null 2>&1 \
    || die "$MMC_PY has no pip and ensurepip failed: install pip into $(mmc_env_name) and rerun"
fi
pip_install() { "$MMC_PY" -m pip install -q "$@"; }

# 4. PyTorch, then mmc-sweep (editable) with its test extras.
if [ -n "${TORCH_SPEC:-}" ]; then
  echo "mmc-sweep: pip install $TORCH_SPEC"
  pip_install "$TORCH_SPEC"
elif ! py_outside "$MMC_PY" -c "$FIND_SPEC_CHECK" "$root" torch; then
  echo "mmc-sweep: installing PyTorch (CPU build)"
  # 1. A wheelhouse pip is configured with (find-links; the project's machines cache the torch==2.13.0 CPU
  #    wheel there): no network. Its dependencies come with mmc-sweep's below.
  # 2. PyTorch's CPU index (~200 MB; PyPI's Linux wheel is the multi-GB CUDA build).
  # 3. Only when that index is unreachable: the pinned release from whatever index pip uses, with a warning.
  if pip_install --no-index --no-deps "torch==2.13.0" >/dev/null 2>&1; then
    :
  elif pip_install --retries 1 torch --index-url https://download.pytorch.org/whl/cpu 2>/dev/null; then
    :
  else
    echo "mmc-sweep: warning: no torch from PyTorch's CPU index (download.pytorch.org unreachable, or no wheel for this Python); installing torch==2.13.0 from pip's index instead (on Linux that is the CUDA build, several GB; set TORCH_SPEC to choose another)" >&2
    pip_install "torch==2.13.0"
  fi
fi
echo "mmc-sweep: installing mmc-sweep and its dependencies (Ray, MLflow, pyarrow, ...)"
pip_install -e ".[test]"
py_outside "$MMC_PY" -c "import torch, ray, mlflow, pyarrow; print(f'mmc-sweep: installed: torch {torch.__version__}, ray {ray.__version__}, mlflow {mlflow.__version__}, pyarrow {pyarrow.__version__}')"
printf '%s\n' "$stamp" > "$stamp_file" 2>/dev/null || echo "mmc-sweep: warning: could not write $stamp_file; the next run will call pip again" >&2
