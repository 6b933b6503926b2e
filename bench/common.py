"""Shared pieces of the benchmarks: timing (alternating variants, medians), provenance, JSON output,
and the benchmark data sets (built-in digits, CIFAR-shaped synthetic data with box cues).

Benchmarks are scripts, not tests: they print figures and ratios measured side by side in one run.
The machine is usually shared, so every script alternates its variants and reports medians.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
OUT_DIR_ENV_VAR = "MMC_BENCH_OUT"
DEFAULT_OUT_DIR = REPO / "bench" / "out"

from tasks.data import (DATASETS, CueData, DataSettings, Split, box_colours, box_corners, choose_cued,  # noqa: E402
                        load_cue_data, BOX_SIZE)
from tasks.models import build_model  # noqa: E402
from tasks.seeding import generator  # noqa: E402
from tasks.train import OptimSettings, cross_entropy_objective, fit  # noqa: E402


# --------------------------------------------------------------------------- runners of the sweep benchmarks

def runner(name: str) -> str:
    """What `run_sweep(runner=...)` takes for the benchmark runner `name` (`noop`, `synthetic`, `real`):
    `real` itself, the import path of the test-support runner (tests/support/runners.py), or the bare name
    for an earlier revision that still had the fake runners built in (`bench.scale --before REV`)."""
    if name == "real":
        return name
    try:
        from orchestrator.run import work
    except ImportError:              # before the orchestrator's packages by layer
        from orchestrator import work
    return name if name in getattr(work, "RUNNERS", {}) else f"tests.support.runners:{name}"


# --------------------------------------------------------------------------- CLI, provenance, output

def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (smoke run, seconds)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per variant (median reported)")
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto (cuda when available)")
    parser.add_argument("--out", default=None, help=f"JSON output directory (default {DEFAULT_OUT_DIR}, "
                                                    f"or ${OUT_DIR_ENV_VAR})")
    parser.add_argument("--tag", default="", help="suffix of the JSON file name (e.g. gpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    return parser


def setup(args) -> torch.device:
    """Apply --threads and --device; print and return the device."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return pick_device(args.device)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: CUDA is not available here; use --device cpu")
    return torch.device(name)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


SWEEPS = {"default": None, "smoke": str(REPO / "sweeps" / "smoke.yaml")}   # --whole-sweep / --real choices


def start(args) -> tuple[torch.device, dict]:
    """`setup` + `environment`, and the one line every benchmark prints first."""
    device = setup(args)
    env = environment(device)
    print(f"device {device}; {env['cpu']}; torch {env['torch']} ({env['torch_threads']} threads); "
          f"load {env['loadavg_1m']}")
    return device, env


def environment(device: torch.device | None = None) -> dict:
    """Provenance of a measurement: date, host, CPU, threads, versions, device, load."""
    info = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "host": platform.node(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "device": str(device) if device is not None else None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    try:
        info["git_rev"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                         timeout=5, cwd=REPO).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_rev"] = None
    return info


def write_json(name: str, payload: dict, out: str | None = None, tag: str = "") -> Path:
    directory = Path(out or os.environ.get(OUT_DIR_ENV_VAR) or DEFAULT_OUT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (f"{name}-{tag}.json" if tag else f"{name}.json")
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path


def command_line() -> str:
    return " ".join(["python", "-m", f"bench.{Path(sys.argv[0]).stem}", *sys.argv[1:]])


# --------------------------------------------------------------------------- timing

def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def alternate(variants: dict[str, Callable[[], object]], repeats: int, device: torch.device | str = "cpu",
              log: Callable[[str], None] = print) -> tuple[dict[str, list[float]], dict[str, list]]:
    """Run each variant `repeats` times, interleaved (A B, B A, A B ...: the order flips every round so
    neither always runs first). Returns (seconds per run, result of every run), both by variant."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    results: dict[str, list] = {name: [] for name in variants}
    names = list(variants)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            sync(device)
            start = time.perf_counter()
            result = variants[name]()
            sync(device)
            elapsed = time.perf_counter() - start
            times[name].append(elapsed)
            results[name].append(result)
            log(f"  round {r + 1}/{repeats} {name:<12} {elapsed:8.3f} s")
    return times, results


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def summary(values: list[float]) -> dict:
    return {"median": median(values), "min": float(min(values)), "max": float(max(values)), "runs": values}


def forward_flops(model: torch.nn.Module, shape: tuple[int, ...]) -> float:
    """FLOPs (2 per multiply-add) of one forward pass of one image of `shape` (C, H, W): convs + linears."""
    total = [0.0]

    def conv(module, inputs, output):
        k = module.weight[0].numel()          # (C_in / groups) * kh * kw
        total[0] += 2.0 * k * output[0].numel()

    def linear(module, inputs, output):
        total[0] += 2.0 * module.weight.numel()

    handles = [m.register_forward_hook(conv if isinstance(m, torch.nn.Conv2d) else linear)
               for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model(torch.zeros(1, *shape, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total[0]


# --------------------------------------------------------------------------- data sets

@dataclass(frozen=True, eq=False)
class BenchData:
    """A data set in two forms: `cue` (tensors, what mmc-sweep uses) and `raw_*` (numpy arrays, what a
    per-sample Dataset reads; uint8 HWC like CIFAR's arrays, or already normalised float32 CHW)."""

    name: str
    cue: CueData
    raw_train: np.ndarray      # clean training images
    raw_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    cued_train: np.ndarray     # bool: which training samples carry the cue
    raw_uint8: bool            # True: HWC uint8 (normalise per sample); False: CHW float32, normalised
    corners: np.ndarray        # [10, 2] box positions (tasks.data.box_corners)
    colours: np.ndarray        # [K, C] normalised box colours (tasks.data.box_colours)
    image_size: tuple[int, int]

    @property
    def num_classes(self) -> int:
        return self.cue.num_classes

    @property
    def in_channels(self) -> int:
        return self.cue.in_channels


def digits_data(cue_proportion: float = 0.0, seed: int = 0, device: torch.device | str = "cpu") -> BenchData:
    """The built-in digits (1,400 train / 397 test, grayscale) through tasks.data.load_cue_data."""
    cue = load_cue_data(DataSettings("digits", cue_proportion=cue_proportion, seed=seed), "cpu")
    height, width = cue.train.x.shape[-2:]
    info = DATASETS["digits"]                         # the cue geometry tasks.data painted with
    layout = getattr(info, "box_layout", None)
    corners = box_corners(height, width, layout=layout) if layout else box_corners(height, width)
    return BenchData(
        name="digits", cue=_to_device(cue, device),
        raw_train=cue.train_clean.x.numpy().astype(np.float32), raw_test=cue.eval_sets["nocue"].x.numpy(),
        y_train=cue.train_clean.y.numpy(), y_test=cue.eval_sets["nocue"].y.numpy(),
        cued_train=cue.cued.numpy(), raw_uint8=False,
        corners=corners.numpy(), colours=box_colours(cue.num_classes, cue.in_channels).numpy(),
        image_size=(height, width))


def _to_device(cue: CueData, device: torch.device | str) -> CueData:
    if torch.device(device).type == "cpu":
        return cue
    return CueData(train=cue.train.to(device), train_clean=cue.train_clean.to(device), cued=cue.cued.to(device),
                   eval_sets={k: v.to(device) for k, v in cue.eval_sets.items()},
                   num_classes=cue.num_classes, in_channels=cue.in_channels)


def paint_boxes(x: torch.Tensor, labels: torch.Tensor, corners: torch.Tensor, colours: torch.Tensor) -> None:
    """Batched box cue (same geometry and colours as tasks.data): x[i] gets the box of labels[i]."""
    n, channels = x.shape[0], x.shape[1]
    if n == 0:
        return
    span = torch.arange(BOX_SIZE, device=x.device)
    corner = corners.to(x.device)[labels % 10]
    rows = (corner[:, 0, None] + span).view(n, 1, BOX_SIZE, 1)
    cols = (corner[:, 1, None] + span).view(n, 1, 1, BOX_SIZE)
    chans = torch.arange(channels, device=x.device).view(1, channels, 1, 1)
    colour = colours.to(x.device, x.dtype)[labels].view(n, channels, 1, 1)
    x[torch.arange(n, device=x.device).view(n, 1, 1, 1), chans, rows, cols] = \
        colour.expand(n, channels, BOX_SIZE, BOX_SIZE)


def synthetic_cifar(n_train: int, n_test: int, cue_proportion: float = 0.0, seed: int = 0,
                    device: torch.device | str = "cpu", num_classes: int = 10) -> BenchData:
    """CIFAR-shaped synthetic data: uint8 32x32x3 images (a class-dependent smooth colour pattern plus
    noise, so models can learn a little), box cues exactly as tasks.data paints them, the four
    counterfactual sets. Stored as float16 on `device` like the real CIFAR-10 (tasks.data)."""
    gen = generator(seed, "bench-synthetic-cifar")
    patterns = torch.rand(num_classes, 3, 4, 4, generator=gen)
    patterns = torch.nn.functional.interpolate(patterns, size=(32, 32), mode="bilinear", align_corners=False)

    def images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, num_classes, (n,), generator=gen)
        noise = torch.rand(n, 3, 32, 32, generator=gen)
        x = (0.5 * patterns[y] + 0.5 * noise) * 255
        return x.round().clamp(0, 255).to(torch.uint8), y

    u8_train, y_train = images(n_train)
    u8_test, y_test = images(n_test)
    corners, colours = box_corners(32, 32), box_colours(num_classes, 3)
    dtype = torch.float16

    def normalise(u8: torch.Tensor) -> torch.Tensor:
        return (u8.to(device).float() / 255 * 2 - 1).to(dtype)

    x_train, x_test = normalise(u8_train), normalise(u8_test)
    cued = choose_cued(y_train, cue_proportion, generator(seed, "bench-cued"))
    x_cued = x_train.clone()
    index = cued.nonzero().squeeze(1)
    if index.numel():
        sub = x_cued[index.to(device)]
        paint_boxes(sub, y_train[index], corners, colours)
        x_cued[index.to(device)] = sub
    yd_train, yd_test = y_train.to(device), y_test.to(device)
    sets = {"nocue": Split(x_test, yd_test)}
    cue_x = x_test.clone()
    paint_boxes(cue_x, y_test, corners, colours)
    sets["cue"] = Split(cue_x, yd_test)
    g2 = generator(seed, "bench-randcue")
    rand_x = x_test.clone()
    paint_boxes(rand_x, torch.randint(0, num_classes, (n_test,), generator=g2), corners, colours)
    sets["randcue"] = Split(rand_x, yd_test)
    perm = torch.randperm(n_test, generator=generator(seed, "bench-randimg"))
    other = torch.empty_like(perm)
    other[perm] = perm.roll(-1)                       # a derangement: never the image itself
    img_x = x_test[other.to(device)].clone()
    paint_boxes(img_x, y_test, corners, colours)
    sets["randimg"] = Split(img_x, yd_test)
    cue = CueData(train=Split(x_cued, yd_train), train_clean=Split(x_train, yd_train), cued=cued.to(device),
                  eval_sets=sets, num_classes=num_classes, in_channels=3)
    return BenchData(
        name="synthetic_cifar", cue=cue,
        raw_train=u8_train.permute(0, 2, 3, 1).contiguous().numpy(),
        raw_test=u8_test.permute(0, 2, 3, 1).contiguous().numpy(),
        y_train=y_train.numpy(), y_test=y_test.numpy(), cued_train=cued.numpy(), raw_uint8=True,
        corners=corners.numpy(), colours=colours.numpy(), image_size=(32, 32))


# --------------------------------------------------------------------------- models

def train_endpoint(model_name: str, data: BenchData, split: Split, *, seed: int, epochs: int, device,
                   width: int | None = None, batch_size: int = 64, lr: float = 0.05) -> dict[str, torch.Tensor]:
    """A briefly trained model (tasks.train.fit, cosine schedule): endpoint of a benchmark path."""
    model = build_model(model_name, data.num_classes, data.in_channels, width, seed=seed)
    if epochs > 0:
        settings = OptimSettings(epochs=epochs, lr=lr, batch_size=batch_size, schedule="cosine")
        fit(model, cross_entropy_objective(split, batch_size, seed), model.parameters(), settings,
            seed=seed, device=device)
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
