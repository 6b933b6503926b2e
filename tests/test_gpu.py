"""CUDA checks: the device paths of `tasks/` and a sweep whose tasks ask for GPUs.

Run by `bash bench/gpu.sh` (`pytest -m gpu`); skipped where torch sees no CUDA device (CI has none).
Tolerances allow for TF32 convolutions (torch's default on Ampere and later) and bf16 evaluation.
"""
from __future__ import annotations

import pytest
import torch

from tasks.data import DataSettings, load_cue_data
from tasks.evaluate import evaluate, resolve_precision
from tasks.models import build_model
from tasks.paths import FoldedBN, PathSettings, evaluate_path, reset_bn
from tasks.train import OptimSettings, cross_entropy_objective, fit
from tests.conftest import write_spec

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def digits():
    return {device: load_cue_data(DataSettings("digits", cue_proportion=0.8, seed=0), device)
            for device in ("cpu", "cuda")}


@pytest.fixture(scope="module")
def endpoints(digits):
    """A cue model and a no-cue model, trained 2 epochs on the GPU (states on the CPU)."""
    clean = load_cue_data(DataSettings("digits", cue_proportion=0.0, seed=0), CUDA)
    states = []
    for seed, data in ((0, digits["cuda"]), (1, clean)):
        model = build_model("small_cnn", data.num_classes, data.in_channels, seed=seed)
        fit(model, cross_entropy_objective(data.train, 64, seed=seed), model.parameters(),
            OptimSettings(epochs=2, lr=0.05, batch_size=64, schedule="constant"), seed=seed, device=CUDA)
        states.append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
    return states


def test_data_on_the_gpu_equals_the_cpu_data(digits):
    cpu, gpu = digits["cpu"], digits["cuda"]
    assert gpu.train.x.is_cuda and all(s.x.is_cuda and s.y.is_cuda for s in gpu.eval_sets.values())
    torch.testing.assert_close(gpu.train.x.cpu(), cpu.train.x)
    for name in ("nocue", "cue"):                       # the deterministic sets are the same images
        torch.testing.assert_close(gpu.eval_sets[name].x.cpu(), cpu.eval_sets[name].x)


def test_auto_precision_on_this_gpu():
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    assert resolve_precision("auto", CUDA) == expected


def test_training_on_the_gpu_learns(digits, endpoints):
    model = build_model("small_cnn", digits["cuda"].num_classes, digits["cuda"].in_channels)
    model.load_state_dict(endpoints[0])
    result = evaluate(model, digits["cuda"].eval_sets["cue"], device=CUDA)
    assert result["acc"] > 0.5, result                  # the cue model learned (chance is 0.1)
    assert next(model.parameters()).is_cuda


@pytest.mark.parametrize("name", ["small_cnn", "vgg13", "resnet18"])
def test_folded_bn_on_the_gpu(name):
    model = build_model(name, 10, 3, width=8, seed=0).to(CUDA, memory_format=torch.channels_last)
    reset_bn(model, torch.randn(64, 3, 32, 32, device=CUDA), batch_size=32, precision="fp32")
    x = torch.randn(16, 3, 32, 32, device=CUDA).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(FoldedBN(model).module(x), model(x), rtol=2e-2, atol=2e-2)


def test_path_curves_on_the_gpu_match_the_cpu(digits, endpoints):
    a, b = endpoints
    rows = {}
    for device, precision in (("cpu", "fp32"), ("cuda", "fp32"), ("cuda", "bf16")):
        data = digits[device]
        model = build_model("small_cnn", data.num_classes, data.in_channels)
        settings = PathSettings(num_alphas=5, bn_reset_samples=500, precision=precision)
        rows[device, precision] = evaluate_path(model, a, b, bn_data=data.train_clean.x, sets=data.eval_sets,
                                                settings=settings, device=device)
    reference = rows["cpu", "fp32"]
    for key, tolerance in ((("cuda", "fp32"), (0.01, 0.01)), (("cuda", "bf16"), (0.03, 0.02))):
        for r_cpu, r_gpu in zip(reference, rows[key]):
            assert (r_cpu["alpha"], r_cpu["eval_set"]) == (r_gpu["alpha"], r_gpu["eval_set"])
            assert abs(r_gpu["loss"] - r_cpu["loss"]) <= tolerance[0] * max(1.0, r_cpu["loss"]), (key, r_cpu, r_gpu)
            assert abs(r_gpu["acc"] - r_cpu["acc"]) <= tolerance[1], (key, r_cpu, r_gpu)


def test_a_sweep_with_gpu_tasks_runs_them_on_the_gpu(tmp_path):
    ray = pytest.importorskip("ray")      # a bare GPU image may have torch only: the tasks/ tests above still run
    pytest.importorskip("mlflow")
    from orchestrator.results import tables
    from orchestrator.spec.sweep_spec import load_spec
    from orchestrator.run.sweep import run_sweep

    if ray.is_initialized():
        ray.shutdown()
    gpu = {"cpus": 1, "gpus": 0.25}
    path = write_spec(tmp_path, "gpu-smoke", finetune={"methods": []},
                      paths={"pairs": ["cue~nocue"], "kinds": ["linear", "quadratic"]},
                      resources={kind: gpu for kind in ("pretrain", "finetune", "midpoint", "align", "path_eval")})
    spec = load_spec(path)
    try:
        outcome = run_sweep(spec, spec_text=path.read_text(), num_cpus=4, report=False)
    finally:
        ray.shutdown()
    assert outcome.ok, outcome.counts
    tasks = tables.read_table(outcome.layout, "tasks")
    assert len(tasks) > 0 and tasks["device"].str.startswith("cuda").all(), tasks[["kind", "device"]]
