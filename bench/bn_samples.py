"""How many clean training samples N the exact BN re-estimation needs: barriers and time against N.

    python -m bench.bn_samples                  # CPU defaults, ~2-3 min on 2 cores
    python -m bench.bn_samples --quick
    python -m bench.bn_samples --models vgg13 --vgg-width 64 --train 10000 --test 5000 --vgg-n 500,1000,2000,5000,10000

For each N, `tasks.paths.evaluate_path` runs on a linear cue~nocue path with BN re-estimated on N
samples drawn from the clean training set (`--subsets` different random draws); the reference value
is N = the whole training set. Printed: time per path, the loss barrier (chord) per evaluation set,
and its deviation from the full-set value (absolute, and relative to the full-set barrier), plus the
largest deviation of any point of the loss and accuracy curves.
"""
from __future__ import annotations


import statistics
import time

import torch

from bench import common
from tasks.models import build_model
from tasks.paths import PathSettings, barriers, evaluate_path
from tasks.seeding import generator


def parse_args(argv=None):
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--models", default="small_cnn,vgg13")
    p.add_argument("--digits-n", default="250,500,1000,1400", help="N values for small_cnn/digits (max 1400)")
    p.add_argument("--vgg-n", default="500,1000,2000,5000", help="N values for vgg13/synthetic CIFAR")
    p.add_argument("--train", type=int, default=5000, help="synthetic CIFAR training images")
    p.add_argument("--test", type=int, default=1000, help="synthetic CIFAR test images per set")
    p.add_argument("--vgg-width", type=int, default=16, help="vgg13 width (CPU default 16; 64 = paper)")
    p.add_argument("--vgg-epochs", type=int, default=2, help="training epochs of the vgg13 endpoints")
    p.add_argument("--digits-epochs", type=int, default=8)
    p.add_argument("--alphas", type=int, default=11)
    p.add_argument("--subsets", type=int, default=3, help="random draws of the N samples (N < full)")
    p.add_argument("--eval-batch", type=int, default=PathSettings().eval_batch_size)
    args = p.parse_args(argv)
    if args.quick:
        args.digits_n, args.vgg_n = "250,1400", "128,512"
        args.train, args.test, args.vgg_width = 512, 128, 8
        args.vgg_epochs, args.digits_epochs, args.alphas, args.subsets = 1, 1, 3, 1
    return args


def setup_model(name: str, args, device):
    if name == "small_cnn":
        cued = common.digits_data(0.9, seed=0, device=device)
        clean = common.digits_data(0.0, seed=0, device=device)
        a = common.train_endpoint(name, cued, cued.cue.train, seed=0, epochs=args.digits_epochs, device=device)
        b = common.train_endpoint(name, clean, clean.cue.train, seed=1, epochs=args.digits_epochs, device=device)
        return clean, a, b, None, [int(v) for v in args.digits_n.split(",")]
    if name == "vgg13":
        data = common.synthetic_cifar(args.train, args.test, cue_proportion=0.9, seed=0, device=device)
        kw = dict(epochs=args.vgg_epochs, device=device, width=args.vgg_width, batch_size=128)
        a = common.train_endpoint(name, data, data.cue.train, seed=0, **kw)
        b = common.train_endpoint(name, data, data.cue.train_clean, seed=1, **kw)
        return data, a, b, args.vgg_width, [int(v) for v in args.vgg_n.split(",")]
    raise SystemExit(f"--models: {name!r} is not known; choose small_cnn or vgg13")


def loss_chords(rows: list[dict]) -> dict[str, float]:
    return {r["eval_set"]: r["value"] for r in barriers(rows) if r["metric"] == "loss" and r["definition"] == "chord"}


def curve_dev(rows: list[dict], full: list[dict], key: str) -> float:
    ref = {(r["alpha"], r["eval_set"]): r[key] for r in full}
    return max(abs(r[key] - ref[(r["alpha"], r["eval_set"])]) for r in rows)


def bench_model(name: str, args, device) -> dict:
    data, a, b, width, ns = setup_model(name, args, device)
    x = data.cue.train_clean.x
    n_full = len(x)
    ns = sorted({min(n, n_full) for n in ns} | {n_full})
    model = build_model(name, data.num_classes, data.in_channels, width, seed=0)
    print(f"\n== {name} (width {width or 'default'}) on {data.name}: linear cue~nocue path, {args.alphas} alphas, "
          f"N in {ns} (full = {n_full}), {args.subsets} random subsets per N, device {device}")

    def run(n: int, subset: int) -> tuple[list[dict], float]:
        order = torch.randperm(n_full, generator=generator(subset, "bench-bn-subset")).to(x.device)
        bn_x = x if n == n_full else x[order[:n]]
        settings = PathSettings(num_alphas=args.alphas, bn_reset_samples=n, eval_batch_size=args.eval_batch)
        common.sync(device)
        start = time.perf_counter()
        rows = evaluate_path(model, a, b, bn_data=bn_x, sets=data.cue.eval_sets, settings=settings, device=device)
        common.sync(device)
        return rows, time.perf_counter() - start

    run(min(ns), 0)                                    # warm-up
    full_rows, full_t = run(n_full, 0)
    full_b = loss_chords(full_rows)
    table = []
    for n in ns:
        draws = [run(n, s) for s in range(1 if n == n_full else args.subsets)]
        chords = [loss_chords(rows) for rows, _ in draws]
        times = [t for _, t in draws] + ([full_t] if n == n_full else [])
        entry = {"n": n, "time_s": common.median(times), "barrier_loss_chord": {}, "abs_dev": {}, "rel_dev": {},
                 "max_curve_dev_loss": max(curve_dev(rows, full_rows, "loss") for rows, _ in draws),
                 "max_curve_dev_acc": max(curve_dev(rows, full_rows, "acc") for rows, _ in draws)}
        for s, ref in full_b.items():
            values = [c[s] for c in chords]
            dev = max(abs(v - ref) for v in values)
            entry["barrier_loss_chord"][s] = statistics.fmean(values)
            entry["abs_dev"][s] = dev
            entry["rel_dev"][s] = dev / abs(ref) if abs(ref) > 1e-12 else None
        table.append(entry)
    sets = list(full_b)
    print(f"{'N':>6} {'time/path':>10}  " + "  ".join(f"{s + ' barrier (dev, rel)':>30}" for s in sets)
          + "   max|dloss| max|dacc| on the curves")
    for e in table:
        cells = []
        for s in sets:
            rel = e["rel_dev"][s]
            cells.append(f"{e['barrier_loss_chord'][s]:9.4f} ({e['abs_dev'][s]:.4f}, "
                         f"{'  -  ' if rel is None else f'{100 * rel:5.1f}%'})")
        print(f"{e['n']:>6} {e['time_s']:9.3f}s  " + "  ".join(f"{c:>30}" for c in cells)
              + f"   {e['max_curve_dev_loss']:.4f}   {e['max_curve_dev_acc']:.4f}")
    return {"model": name, "width": width, "data": data.name, "n_train": n_full, "alphas": args.alphas,
            "subsets": args.subsets, "full_barrier_loss_chord": full_b, "table": table}


def main(argv=None) -> dict:
    args = parse_args(argv)
    device, env = common.start(args)
    results = [bench_model(name.strip(), args, device) for name in args.models.split(",") if name.strip()]
    payload = {"benchmark": "bn_samples", "command": common.command_line(), "environment": env, "results": results}
    common.write_json("bn_samples", payload, args.out, args.tag)
    return payload


if __name__ == "__main__":
    main()
