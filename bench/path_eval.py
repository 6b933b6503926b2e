"""Path evaluation: mmc-sweep's `tasks.paths.evaluate_path` against the paper's original procedure.

    python -m bench.path_eval                 # CPU defaults, ~3 min on 2 cores
    python -m bench.path_eval --quick         # smoke run, seconds
    python -m bench.path_eval --models vgg13 --vgg-width 64 --train 10000 --test 5000 --alphas 11 \
        --ref-alphas 2 --eval-batch 4096 --workers 4      # GPU settings (bench/gpu.sh)

Baseline (bench/reference.py): per-sample Dataset drawing cues in `__getitem__` (`--pipelines`: the
reference's torchvision-style steps, and/or our leanest per-sample code), a standard DataLoader,
a fresh model per alpha and set, BN re-estimated with momentum 0.1 over the whole training set
separately for each of the four evaluation sets. Fast: `evaluate_path` in each of `--precisions` (on the CPU,
`alpha_workers` alphas side by side, one intra-op thread each: `--threads` sets how many; `--untraced` adds each
with `reset_bn`'s own re-estimation pass instead of the traced `ResetPass`, the code before it, in the same rounds).
All variants run alternately; medians are reported. The time per alpha is compared (per-alpha cost is
the same at every alpha, so the baseline may run fewer alphas: `--ref-alphas`). Curves are compared at the alphas both ran; the
baseline against itself (other random draws and shuffles) gives the noise level.
"""
from __future__ import annotations

import contextlib
from unittest import mock

from bench import common, reference
from tasks.evaluate import PRECISIONS, resolve_precision
from tasks.models import build_model
from tasks.paths import PathSettings, ResetPass, alpha_workers, evaluate_path

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
    p.add_argument("--workers", type=int, default=0, help="baseline DataLoader workers (the reference used 4; "
                                                          "on 2 cores 0 is its fastest)")
    p.add_argument("--precisions", default="fp32,auto", help="fast variants: comma-separated "
                                                              f"{'/'.join(PRECISIONS)} (duplicates after "
                                                              "resolving auto are dropped)")
    p.add_argument("--pipelines", default="torchvision", help="baseline per-sample pipelines: comma-separated "
                                                              f"{'/'.join(reference.PIPELINES)}")
    p.add_argument("--untraced", action="store_true", help="also run each fast variant with `reset_bn`'s own "
                                                           "re-estimation pass instead of `ResetPass` (`-untraced`)")
    p.add_argument("--train", type=int, default=5000, help="synthetic CIFAR training images")
    p.add_argument("--test", type=int, default=1000, help="synthetic CIFAR test images per evaluation set")
    p.add_argument("--vgg-width", type=int, default=64, help="vgg13 width (64 = the paper's)")
    p.add_argument("--vgg-epochs", type=int, default=0, help="train the vgg13 endpoints this long (0: random "
                                                             "inits, seeds 0 and 1)")
    p.add_argument("--digits-epochs", type=int, default=6, help="training of the small_cnn endpoints")
    args = p.parse_args(argv)
    for option, given, allowed in (("--precisions", args.precisions, PRECISIONS),
                                   ("--pipelines", args.pipelines, reference.PIPELINES)):
        names = [name.strip() for name in given.split(",") if name.strip()]
        if not names or any(name not in allowed for name in names):
            p.error(f"{option} {given!r}: give one or more of {', '.join(allowed)}, comma-separated")
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
    ref_alpha_list = [0.0] if ref_alphas == 1 else PathSettings(num_alphas=ref_alphas).alphas()
    precisions = list(dict.fromkeys(resolve_precision(p.strip(), device) for p in args.precisions.split(",")))
    pipelines = [p.strip() for p in args.pipelines.split(",") if p.strip()]
    cue = data.cue
    n_train, n_test = len(cue.train_clean), len(cue.eval_sets["nocue"])
    print(f"\n== {model_name} (width {width or 'default'}) on {data.name}: {n_train} train / {n_test} test per set, "
          f"{alphas} alphas (baseline {ref_alphas}), N={min(args.bn_samples, n_train)}, device {device}, "
          f"fast in {'/'.join(precisions)} ({alpha_workers(device, alphas)} alphas side by side), baseline pipelines "
          f"{'/'.join(pipelines)} ({args.workers} workers)")

    def make_model():
        return build_model(model_name, data.num_classes, data.in_channels, width, seed=0)

    counter = iter(range(10 ** 6))

    def fast(precision: str, traced: bool = True):
        settings = PathSettings(num_alphas=alphas, bn_reset_samples=args.bn_samples, eval_batch_size=args.eval_batch,
                                precision=precision)
        scratch = make_model()

        def run():
            with contextlib.ExitStack() as stack:
                if not traced:           # the code before ResetPass: reset_bn's own pass at every alpha
                    stack.enter_context(mock.patch.object(ResetPass, "applies", lambda *_: False))
                return evaluate_path(scratch, state_a, state_b, bn_data=cue.train_clean.x, sets=cue.eval_sets,
                                     settings=settings, device=device)
        return run

    def baseline(pipeline: str):
        train_set, eval_sets = reference.reference_sets(data, pipeline)
        return lambda: reference.evaluate_path_reference(
            make_model, state_a, state_b, train_set=train_set, eval_sets=eval_sets, alphas=ref_alpha_list,
            device=device, batch_size=args.ref_batch, workers=args.workers, seed=next(counter))

    variants = {f"fast-{p}": fast(p) for p in precisions}
    if args.untraced:
        variants.update({f"fast-{p}-untraced": fast(p, traced=False) for p in precisions})
    variants.update({f"ref-{p}": baseline(p) for p in pipelines})
    for name in variants:
        if name.startswith("fast"):
            variants[name]()                           # warm-up (allocator, oneDNN/cuDNN kernels)
    times, results = common.alternate(variants, args.repeats, device)
    n_reset = min(args.bn_samples, n_train)
    images_fast = alphas * (n_reset + 4 * n_test)
    images_ref = ref_alphas * 4 * (n_train + n_test)
    per_alpha = {name: common.median(t) / (alphas if name.startswith("fast") else ref_alphas)
                 for name, t in times.items()}
    flops = common.forward_flops(make_model().to(device), tuple(cue.train_clean.x.shape[1:]))
    for name, t in times.items():
        images = images_fast if name.startswith("fast") else images_ref
        print(f"{name:<16} median {common.median(t):8.3f} s  ({per_alpha[name] * 1e3:9.1f} ms/alpha, "
              f"{images / common.median(t):9.0f} images/s)")
    print(f"forward images per alpha: fast {images_fast // alphas}, reference {images_ref // ref_alphas} "
          f"({images_ref / ref_alphas / (images_fast / alphas):.2f}x fewer)")
    speedups, projected = {}, {}
    for f_name in (n for n in variants if n.startswith("fast")):
        for r_name in (n for n in variants if n.startswith("ref")):
            key = f"{f_name} vs {r_name}"
            speedups[key] = per_alpha[r_name] / per_alpha[f_name]
            # Per forward image each variant costs t / images; at the paper's sizes (50k train, 10k test
            # per set) the image counts change but the per-image costs do not (both linear in images).
            c_fast = common.median(times[f_name]) / images_fast
            c_ref = common.median(times[r_name]) / images_ref
            projected[key] = 4 * (50000 + 10000) * c_ref / ((n_reset + 4 * 10000) * c_fast)
            print(f"speed-up per alpha {key:<34} {speedups[key]:7.2f}x   "
                  f"(projected at the paper's sizes, N={n_reset}: {projected[key]:.2f}x)")
    last = {name: rows[-1] for name, rows in results.items()}
    first_ref = next(n for n in variants if n.startswith("ref"))
    diffs = {f"{f} vs {first_ref}": curve_diffs(last[f], last[first_ref]) for f in variants if f.startswith("fast")}
    if len(precisions) > 1:
        diffs[f"fast-{precisions[1]} vs fast-{precisions[0]}"] = curve_diffs(last[f"fast-{precisions[1]}"],
                                                                             last[f"fast-{precisions[0]}"])
    traced_gain = {}
    for p in (p for p in precisions if args.untraced):
        key, rounds = f"fast-{p} vs fast-{p}-untraced", zip(times[f"fast-{p}"], times[f"fast-{p}-untraced"])
        exact = curve_diffs(last[f"fast-{p}"], last[f"fast-{p}-untraced"])
        traced_gain[key] = {"median": per_alpha[f"fast-{p}-untraced"] / per_alpha[f"fast-{p}"],
                            "per_round": [u / t for t, u in rounds],
                            "max_abs_diff": {m: max(d[m] for d in exact.values()) for m in ("loss", "acc")}}
        print(f"ResetPass gain {key}: {traced_gain[key]['median']:.2f}x of the medians, per round "
              f"{' / '.join(f'{g:.2f}x' for g in traced_gain[key]['per_round'])}; rows max |difference| "
              f"loss {traced_gain[key]['max_abs_diff']['loss']:.2e}, acc {traced_gain[key]['max_abs_diff']['acc']:.2e}")
    noise = curve_diffs(results[first_ref][0], results[first_ref][-1]) if args.repeats > 1 else None
    print("curves, max |difference| per set (alphas both ran):")
    for key, per_set in diffs.items():
        print(f"  {key}")
        for name, d in per_set.items():
            extra = (f"   noise ({first_ref} vs itself): loss {noise[name]['loss']:.4f} "
                     f"acc {noise[name]['acc']:.4f}") if noise else ""
            print(f"    {name:<8} loss {d['loss']:.4f}  acc {d['acc']:.4f}{extra}")
    result = {
        "model": model_name, "width": width, "data": data.name, "n_train": n_train, "n_test_per_set": n_test,
        "alphas": alphas, "ref_alphas": ref_alphas, "bn_reset_samples": n_reset, "eval_batch": args.eval_batch,
        "ref_batch": args.ref_batch, "workers": args.workers, "alpha_workers": alpha_workers(device, alphas),
        "repeats": args.repeats, "precisions": precisions, "pipelines": pipelines,
        "seconds": {name: common.summary(t) for name, t in times.items()},
        "ms_per_alpha": {name: v * 1e3 for name, v in per_alpha.items()}, "speedup_per_alpha": speedups,
        "projected_speedup_paper_sizes": projected, "forward_images_fast": images_fast,
        "forward_images_reference": images_ref, "forward_gflop_per_image": flops / 1e9,
        "curve_max_abs_diff": diffs, "reference_noise": noise, "reset_pass_gain": traced_gain, "rows": last,
    }
    if device.type == "cuda":
        best = min(common.median(times[n]) for n in variants if n.startswith("fast"))
        ideal = [images_fast * flops / (GPU_PEAK_FLOPS * f) for f in (0.5, 0.3)]
        result["ideal_s_at_50_30pct_of_peak"] = ideal
        print(f"FLOP-derived ideal (30-50% of {GPU_PEAK_FLOPS / 1e12:.0f} TFLOP/s): {ideal[0]:.3f}-{ideal[1]:.3f} s; "
              f"fastest measured {best:.3f} s = {best / ideal[1]:.1f}-{best / ideal[0]:.1f}x of it")
    return result


def main(argv=None) -> dict:
    args = parse_args(argv)
    device, env = common.start(args)
    results = [bench_model(name.strip(), args, device) for name in args.models.split(",") if name.strip()]
    print("\nsummary (speed-up per alpha):")
    for r in results:
        for key, value in r["speedup_per_alpha"].items():
            print(f"  {r['model']:<10} {key:<34} {value:7.2f}x")
    payload = {"benchmark": "path_eval", "command": common.command_line(), "environment": env, "results": results}
    common.write_json("path_eval", payload, args.out, args.tag)
    return payload


if __name__ == "__main__":
    main()
