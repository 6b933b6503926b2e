#!/usr/bin/env bash
# GPU benchmarks of mmc-sweep, run blind on a machine with one NVIDIA GPU (H100 class); < 12 minutes.
#
#   bash bench/gpu.sh            # from the repository root; figures go to bench/out/*-gpu.json and bench/out/gpu.log
#
# Each step has its own timeout; a failing step is reported and the next one still runs; the exit
# status is non-zero if any step failed. Sizes: VGG-13 (width 64) training epoch on 50k CIFAR-sized
# synthetic images; path evaluation on 10k train / 5k test per set (11 alphas; the per-sample baseline
# runs 2 alphas, compared per alpha, since its per-alpha cost is the same at every alpha).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${MMC_BENCH_OUT:-bench/out}"
mkdir -p "$OUT"
LOG="$OUT/gpu.log"
export MMC_BENCH_OUT="$OUT"
PY="${PYTHON:-$(command -v python3 || command -v python)}"
WORKERS="${BENCH_WORKERS:-8}"
failed=()

exec > >(tee -a "$LOG") 2>&1
echo "=== mmc-sweep GPU benchmarks, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv || echo "nvidia-smi failed"
lscpu | grep -E '^(Model name|CPU\(s\)):' || true
"$PY" - <<'PYEOF'
import torch, platform
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "cudnn", torch.backends.cudnn.version())
print("cuda available:", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
if not torch.cuda.is_available():
    raise SystemExit("no CUDA device visible to torch: stopping (these are GPU benchmarks)")
PYEOF

step() {   # step NAME TIMEOUT_S command...
    local name=$1 limit=$2; shift 2
    echo; echo "=== $name (timeout ${limit}s): $*"
    local start=$SECONDS
    if timeout --signal=TERM --kill-after=10 "$limit" "$@"; then
        echo "=== $name: ok in $((SECONDS - start)) s"
    else
        local rc=$?
        echo "=== $name: FAILED (exit $rc) after $((SECONDS - start)) s"
        failed+=("$name")
    fi
}

# GPU tests, if any are marked (pytest exits 5 when none are collected: not a failure).
step gpu-tests 75 bash -c "$PY -m pytest -m gpu -q -x -n 0 -p no:randomly -p no:cacheprovider tests/test_gpu.py; rc=\$?; [ \$rc -eq 5 ] && echo 'no GPU tests collected' && exit 0; exit \$rc"
step train-throughput 100 "$PY" -m bench.train_throughput --device cuda --tag gpu --models vgg13,small_cnn \
    --train 50000 --batch 512 --workers "$WORKERS" --repeats 3
step path-eval 120 "$PY" -m bench.path_eval --device cuda --tag gpu --models vgg13,small_cnn --train 10000 --test 5000 \
    --alphas 11 --ref-alphas 2 --eval-batch 4096 --bn-samples 5000 --workers "$WORKERS" --repeats 3
step path-eval-batch1024 40 "$PY" -m bench.path_eval --device cuda --tag gpu-b1024 --models vgg13 --train 10000 \
    --test 5000 --alphas 11 --ref-alphas 1 --eval-batch 1024 --bn-samples 5000 --workers "$WORKERS" --repeats 2
step bn-samples 50 "$PY" -m bench.bn_samples --device cuda --tag gpu --models vgg13 --vgg-width 64 --train 10000 \
    --test 5000 --vgg-epochs 2 --vgg-n 500,1000,2000,5000,10000 --alphas 5 --subsets 2 --eval-batch 4096
step layout-ab 60 "$PY" -m bench.layout_ab --device cuda --tag gpu --images 8192 --eval-batch 4096 --train-batch 512 --compile
step memory 40 "$PY" -m bench.memory --device cuda --tag gpu --gpu-only --train 10000 --test 5000 --eval-batches 1024,4096
# The paper's sweep (sweeps/cifar10_vgg13.yaml), every role once through the workers' code at full CIFAR sizes, two
# epochs per phase, the whole sweep projected on 1 and 8 GPUs, and 4 path evaluations packed on the GPU against one
# after another (needs the orchestrator's dependencies: pyarrow, pandas).
step paper-sweep 300 "$PY" -m bench.paper_sweep --device cuda --tag gpu --packing 4

echo
echo "=== figures: $OUT/*-gpu*.json; log: $LOG"
if [ ${#failed[@]} -gt 0 ]; then
    echo "=== failed steps: ${failed[*]}"
    exit 1
fi
echo "=== all steps ok"
