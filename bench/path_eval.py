"""Path evaluation: mmc-sweep's `tasks.paths.evaluate_path` against the paper's original procedure.

    python -m bench.path_eval                 # CPU defaults, ~3 min on 2 cores
    python -m bench.path_eval --quick         # smoke run, seconds
    python -m bench.path_eval --models vgg13 --vgg-width 64 --train 10000 --test 5000 --alphas 11 \
        --ref-alphas 2 --eval-batch 4096 --workers 4      # GPU settings (bench/gpu.sh)

Baseline (bench/reference.py): per-sample Dataset drawing cues in `__getitem__`, a standard DataLoader,
a fresh model per alpha and set, BN re-estimated with momentum 0.1 over the whole training set
separately for each of the four evaluation sets. Both variants run alternately; medians are
reported. The time per alpha is compared (per-alpha cost is the same at every alpha, so the
baseline may run fewer alphas: `--ref-alphas`). Curves are compared at the alphas both ran; the
baseline against itself (other random draws and shuffles) gives the noise level.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):                         # `python bench/path_eval.py` works too
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

import torch

from bench import common, reference
from tasks.models import build_model
from tasks.paths import PathSettings, evaluate_path

GPU_PEAK_FLOPS = 790e12            # H100 bf16 dense, measured (PERF_NOTES.md)


def parse_args(argv=None):
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--models", default="small_cnn,vgg13", help="comma-separated: small_cnn (digits), vgg13 "
                                                                "(synthetic CIFAR)")
    p.add_argument("--alphas", type=int, default=None, help="points on the path (default 11 small_cnn, 2 vgg13)")
    p.add_argument("--ref-alphas", type=int, default=None, help="points for the baseline (default: --alphas for "
                                                                "small_cnn, 1 (alpha 0 only) for vgg13)")
    p.add_argument("--bn-samples", type=int, default=PathSettings().bn_reset_samples, help="N of the exact BN reset")
    p.add_argument("--eval-batch", type=int, default=PathSettings().eval_batch_size)
    p.add_argument("--ref-batch", type=int, default=256, help="baseline DataLoader batch size")
    p.add_argument("--workers", type=int, default=0, help="baseline DataLoader workers")
    p.add_argument("--train", type=int, default=5000, help="synthetic CIFAR training images")
    p.add_argument("--test", type=int, default=1000, help="synthetic CIFAR test images per evaluation set")
    p.add_argument("--vgg-width", type=int, default=64, help="vgg13 width (64 = the paper's)")
    p.add_argument("--vgg-epochs", type=int, default=0, help="train the vgg13 endpoints this long (0: random "
                                                             "inits, seeds 0 and 1)")
    p.add_argument("--digits-epochs", type=int, default=6, help="training of the small_cnn endpoints")
    args = p.parse_args(argv)
    if args.quick:
        args.train, args.test, args.vgg_width = min(args.train, 512), min(args.test, 128), min(args.vgg_width, 8)
        args.bn_samples = min(args.bn_samples, 256)
        args.digits_epochs = min(args.digits_epochs, 1)
        args.repeats = args.repeats or 1
    args.repeats = args.repeats or 3
    return args


def endpoints(model_name: str, args, device):
    """(BenchData, state A, state B, width): cue-trained A vs no-cue B where training is cheap."""
    if model_name == "small_cnn":
        cued = common.digits_data(0.9, seed=0, device=device)
        clean = common.digits_data(0.0, seed=0, device=device)
        a = common.train_endpoint("small_cnn", cued, cued.cue.train, seed=0, epochs=args.digits_epochs, device=device)
        b = common.train_endpoint("small_cnn", clean, clean.cue.train, seed=1, epochs=args.digits_epochs, device=device)
        return clean, a, b, None
    if model_name == "vgg13":
        data = common.synthetic_cifar(args.train, args.test, cue_proportion=0.9, seed=0, device=device)
        a = common.train_endpoint("vgg13", data, data.cue.train, seed=0, epochs=args.vgg_epochs, device=device,
                                  width=args.vgg_width, batch_size=128)
        b = common.train_endpoint("vgg13", data, data.cue.train_clean, seed=1, epochs=args.vgg_epochs,
                                  device=device, width=args.vgg_width, batch_size=128)
        return data, a, b, args.vgg_width
    raise SystemExit(f"--models: {model_name!r} is not known; choose small_cnn or vgg13")


def curve_diffs(rows_a: list[dict], rows_b: list[dict]) -> dict:
    """Max |difference| of loss and acc per eval set over the alphas both row lists have."""
    index = {(round(r["alpha"], 9), r["eval_set"]): r for r in rows_b}
    out: dict[str, dict] = {}
    for r in rows_a:
        other = index.get((round(r["alpha"], 9), r["eval_set"]))
        if other is None:
            continue
        d = out.setdefault(r["eval_set"], {"loss": 0.0, "acc": 0.0})
        d["loss"] = max(d["loss"], abs(r["loss"] - other["loss"]))
        d["acc"] = max(d["acc"], abs(r["acc"] - other["acc"]))
    return out


def bench_model(model_name: str, args, device) -> dict:
    data, state_a, state_b, width = endpoints(model_name, args, device)
    alphas = args.alphas or (11 if model_name == "small_cnn" else 2)
    if args.quick:
        alphas = min(alphas, 3)
    ref_alphas = args.ref_alphas or (alphas if model_name == "small_cnn" else 1)
    settings = PathSettings(num_alphas=alphas, bn_reset_samples=args.bn_samples, eval_batch_size=args.eval_batch)
    ref_alpha_list = [0.0] if ref_alphas == 1 else PathSettings(num_alphas=ref_alphas).alphas()
    cue = data.cue
    n_train, n_test = len(cue.train_clean), len(cue.eval_sets["nocue"])
    print(f"\n== {model_name} (width {width or 'default'}) on {data.name}: {n_train} train / {n_test} test per set, "
          f"{alphas} alphas (baseline {ref_alphas}), N={min(args.bn_samples, n_train)}, device {device}")

    def make_model():
        return build_model(model_name, data.num_classes, data.in_channels, width, seed=0)

    scratch = make_model()
    ds_kw = dict(num_classes=data.num_classes, corners=data.corners, colours=data.colours, raw_uint8=data.raw_uint8)
    train_set = reference.CueDataset(data.raw_train, data.y_train, "clean", **ds_kw)
    eval_sets = {m: reference.CueDataset(data.raw_test, data.y_test, m, **ds_kw) for m in reference.EVAL_MODES}
    counter = iter(range(10 ** 6))

    def fast():
        return evaluate_path(scratch, state_a, state_b, bn_data=cue.train_clean.x, sets=cue.eval_sets,
                             settings=settings, device=device)

    def baseline():
        return reference.evaluate_path_reference(make_model, state_a, state_b, train_set=train_set,
                                                 eval_sets=eval_sets, alphas=ref_alpha_list, device=device,
                                                 batch_size=args.ref_batch, workers=args.workers,
                                                 seed=next(counter))

    fast()                                             # warm-up (allocator, oneDNN/cuDNN kernels)
    times, results = common.alternate({"fast": fast, "reference": baseline}, args.repeats, device)
    t_fast, t_ref = common.median(times["fast"]), common.median(times["reference"])
    per_alpha_fast, per_alpha_ref = t_fast / alphas, t_ref / ref_alphas
    ratio = per_alpha_ref / per_alpha_fast
    n_reset = min(args.bn_samples, n_train)
    images_fast = alphas * (n_reset + 4 * n_test)
    images_ref = ref_alphas * 4 * (n_train + n_test)
    diffs = curve_diffs(results["fast"][-1], results["reference"][-1])
    noise = curve_diffs(results["reference"][0], results["reference"][-1]) if args.repeats > 1 else None
    flops = common.forward_flops(make_model().to(device), tuple(cue.train_clean.x.shape[1:]))

    print(f"fast:      median {t_fast:8.3f} s  ({per_alpha_fast * 1e3:8.1f} ms/alpha, "
          f"{images_fast / t_fast:9.0f} images/s)")
    print(f"reference: median {t_ref:8.3f} s  ({per_alpha_ref * 1e3:8.1f} ms/alpha, "
          f"{images_ref / t_ref:9.0f} images/s)")
    print(f"speed-up per alpha: {ratio:.2f}x   (forward images per alpha: fast {images_fast // alphas}, "
          f"reference {images_ref // ref_alphas}: {images_ref / ref_alphas / (images_fast / alphas):.2f}x fewer)")
    # Per forward image, each variant costs t / images; at the paper's sizes (50k train, 10k test per set)
    # the image counts change but the per-image costs do not (both are linear in images here).
    c_fast, c_ref = t_fast / images_fast, t_ref / images_ref
    paper = 4 * (50000 + 10000) * c_ref / ((n_reset + 4 * 10000) * c_fast)
    print(f"projected at the paper's sizes (50k train, 10k test per set, N={n_reset}): {paper:.2f}x")
    print("curves, max |fast - reference| per set (alphas both ran):")
    for name, d in diffs.items():
        extra = f"   noise (reference vs itself): loss {noise[name]['loss']:.4f} acc {noise[name]['acc']:.4f}" \
            if noise else ""
        print(f"  {name:<8} loss {d['loss']:.4f}  acc {d['acc']:.4f}{extra}")
    result = {
        "model": model_name, "width": width, "data": data.name, "n_train": n_train, "n_test_per_set": n_test,
        "alphas": alphas, "ref_alphas": ref_alphas, "bn_reset_samples": n_reset, "eval_batch": args.eval_batch,
        "ref_batch": args.ref_batch, "workers": args.workers, "repeats": args.repeats,
        "fast_s": common.summary(times["fast"]), "reference_s": common.summary(times["reference"]),
        "fast_ms_per_alpha": per_alpha_fast * 1e3, "reference_ms_per_alpha": per_alpha_ref * 1e3,
        "speedup_per_alpha": ratio, "projected_speedup_paper_sizes": paper, "forward_images_fast": images_fast, "forward_images_reference": images_ref,
        "forward_gflop_per_image": flops / 1e9, "curve_max_abs_diff": diffs, "reference_noise": noise,
        "fast_rows": results["fast"][-1], "reference_rows": results["reference"][-1],
    }
    if device.type == "cuda":
        ideal = [images_fast * flops / (GPU_PEAK_FLOPS * f) for f in (0.5, 0.3)]
        result["ideal_s_at_50_30pct_of_peak"] = ideal
        print(f"FLOP-derived ideal (30-50% of {GPU_PEAK_FLOPS / 1e12:.0f} TFLOP/s): {ideal[0]:.3f}-{ideal[1]:.3f} s; "
              f"measured {t_fast:.3f} s = {t_fast / ideal[1]:.1f}-{t_fast / ideal[0]:.1f}x of it")
    return result


def main(argv=None) -> dict:
    args = parse_args(argv)
    device, env = common.start(args)
    results = [bench_model(name.strip(), args, device) for name in args.models.split(",") if name.strip()]
    print("\nsummary:")
    for r in results:
        print(f"  {r['model']:<10} fast {r['fast_ms_per_alpha']:9.1f} ms/alpha  reference "
              f"{r['reference_ms_per_alpha']:9.1f} ms/alpha  speed-up {r['speedup_per_alpha']:6.2f}x")
    payload = {"benchmark": "path_eval", "command": common.command_line(), "environment": env, "results": results}
    common.write_json("path_eval", payload, args.out, args.tag)
    return payload


if __name__ == "__main__":
    main()
