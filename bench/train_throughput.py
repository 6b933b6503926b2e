"""Training throughput (images/s, steady state): mmc-sweep's data path against a per-sample DataLoader.

    python -m bench.train_throughput            # CPU defaults, ~2 min on 2 cores
    python -m bench.train_throughput --quick
    python -m bench.train_throughput --models vgg13 --train 50000 --batch 512 --workers 8   # GPU (bench/gpu.sh)

fast: images resident on the device as tensors (float16 storage for CIFAR-shaped data, cues already
painted), batches by `tasks.data.iterate_batches`, one epoch of `tasks.train.fit` (bf16 autocast and
channels_last everywhere, as in every mmc-sweep training task).
baseline: a per-sample training set (`--pipeline`: "torchvision" = the reference's torchvision-style steps,
`bench.reference.BoxCueWrapper`; "lean" = `bench.reference.CueDataset`) and a standard shuffling
DataLoader, the textbook fp32 NCHW training step (zero_grad, forward, cross-entropy, backward, SGD step,
loss.item()).
One untimed warm-up epoch each, then epochs alternate; medians of the timed epochs.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F

from bench import common, reference
from tasks.models import build_model
from tasks.train import OptimSettings, cross_entropy_objective, fit, make_optimizer


def parse_args(argv=None):
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--models", default="small_cnn,vgg13")
    p.add_argument("--train", type=int, default=1024, help="synthetic CIFAR training images (vgg13)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 64 small_cnn, 128 vgg13)")
    p.add_argument("--vgg-width", type=int, default=64)
    p.add_argument("--workers", type=int, default=0, help="baseline DataLoader workers")
    p.add_argument("--pipeline", default="torchvision", choices=reference.PIPELINES,
                   help="baseline per-sample pipeline")
    args = p.parse_args(argv)
    if args.quick:
        args.train, args.vgg_width, args.repeats = min(args.train, 256), min(args.vgg_width, 8), args.repeats or 1
    args.repeats = args.repeats or 3
    return args


def bench_model(name: str, args, device) -> dict:
    if name == "small_cnn":
        data, width, batch = common.digits_data(0.9, seed=0, device=device), None, args.batch or 64
    elif name == "vgg13":
        data = common.synthetic_cifar(args.train, 16, cue_proportion=0.9, seed=0, device=device)
        width, batch = args.vgg_width, args.batch or 128
    else:
        raise SystemExit(f"--models: {name!r} is not known; choose small_cnn or vgg13")
    split = data.cue.train
    n = len(split) // batch * batch                   # both variants drop the last partial batch
    settings = OptimSettings(epochs=1, lr=0.01, batch_size=batch, schedule="constant")
    print(f"\n== {name} (width {width or 'default'}) on {data.name}: {n} images/epoch, batch {batch}, device {device}, "
          f"baseline pipeline {args.pipeline}")

    fast_model = build_model(name, data.num_classes, data.in_channels, width, seed=0).to(device)
    ref_model = build_model(name, data.num_classes, data.in_channels, width, seed=0).to(device)
    dataset = reference.reference_train_set(data, args.pipeline)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True,
                                         num_workers=args.workers, pin_memory=device.type == "cuda",
                                         persistent_workers=args.workers > 0)
    optimizer = make_optimizer(ref_model.parameters(), settings)
    epoch = iter(range(10 ** 6))

    def fast():
        fit(fast_model, cross_entropy_objective(split, batch, seed=0), fast_model.parameters(), settings,
            seed=0, device=device, start_epoch=0)

    def baseline():
        next(epoch)
        ref_model.train()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(ref_model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss.item()

    fast()
    baseline()                                        # warm-up epochs
    times, _ = common.alternate({"fast": fast, "reference": baseline}, args.repeats, device)
    t_fast, t_ref = common.median(times["fast"]), common.median(times["reference"])
    flops = 3 * common.forward_flops(build_model(name, data.num_classes, data.in_channels, width).to(device),
                                     tuple(split.x.shape[1:]))
    print(f"fast:      {n / t_fast:9.0f} images/s  (epoch {t_fast:.3f} s, {n * flops / t_fast / 1e9:.0f} GFLOP/s)")
    print(f"reference: {n / t_ref:9.0f} images/s  (epoch {t_ref:.3f} s, {n * flops / t_ref / 1e9:.0f} GFLOP/s)")
    print(f"speed-up: {t_ref / t_fast:.2f}x")
    result = {"model": name, "width": width, "data": data.name, "images_per_epoch": n, "batch": batch,
              "workers": args.workers, "pipeline": args.pipeline, "repeats": args.repeats, "fast_s": common.summary(times["fast"]),
              "reference_s": common.summary(times["reference"]), "fast_images_per_s": n / t_fast,
              "reference_images_per_s": n / t_ref, "speedup": t_ref / t_fast, "train_gflop_per_image": flops / 1e9}
    if name == "vgg13" and device.type == "cuda":
        result["fast_s_per_50k_epoch"] = t_fast * 50000 / n
        print(f"projected 50k-image epoch: {result['fast_s_per_50k_epoch']:.3f} s (target <= 0.5 s)")
    return result


def main(argv=None) -> dict:
    args = parse_args(argv)
    device, env = common.start(args)
    results = [bench_model(name.strip(), args, device) for name in args.models.split(",") if name.strip()]
    print("\nsummary:")
    for r in results:
        print(f"  {r['model']:<10} fast {r['fast_images_per_s']:9.0f} images/s  reference "
              f"{r['reference_images_per_s']:9.0f} images/s  speed-up {r['speedup']:5.2f}x")
    payload = {"benchmark": "train_throughput", "command": common.command_line(), "environment": env,
               "results": results}
    common.write_json("train_throughput", payload, args.out, args.tag)
    return payload


if __name__ == "__main__":
    main()
