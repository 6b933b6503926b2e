"""A/B of the layout and precision choices in `tasks/`: each is kept only where this shows a gain.

Evaluation (images/s of eval-mode forward passes, batch `--eval-batch`), one variant per step:
  `nchw_fp32`          the textbook pass (what `tasks.evaluate` did on CPU before);
  `cl_fp32`            channels_last model and images (`tasks.train.prepare_batch`);
  `cl_folded_fp32`     + BatchNorm folded into the convolutions (`tasks.paths.FoldedBN`);
  `cl_folded_bf16`     + bf16 autocast (`precision: auto` on CPUs with AVX512-BF16/AMX and on GPUs);
  `compiled_bf16`      + torch.compile of the folded module (`--compile`; its compile time is printed).
Training (images/s of SGD steps, batch `--train-batch`): `nchw_fp32` vs `cl_fp32` (`tasks.train.fit`).

    python -m bench.layout_ab                  # ~2 min on 2 cores
    python -m bench.layout_ab --quick
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from bench import common
from tasks.evaluate import autocast
from tasks.models import build_model
from tasks.paths import FoldedBN, reset_bn

MODELS = {"small_cnn": (1, 20, None), "vgg13": (3, 32, 64)}   # in_channels, image size, width


def parse_args(argv=None):
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--models", default="small_cnn,vgg13")
    p.add_argument("--images", type=int, default=None, help="images per timed pass (default 4096 small_cnn, "
                                                            "512 vgg13)")
    p.add_argument("--eval-batch", type=int, default=1024)
    p.add_argument("--train-batch", type=int, default=128)
    p.add_argument("--vgg-width", type=int, default=64)
    p.add_argument("--compile", action="store_true", help="also time torch.compile (compile time excluded)")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.vgg_width, args.repeats = 64, min(args.vgg_width, 8), args.repeats or 1
    args.repeats = args.repeats or 3
    return args


def bench_model(name: str, args, device) -> dict:
    channels, size, width = MODELS[name]
    width = args.vgg_width if name == "vgg13" else width
    n = args.images or (4096 if name == "small_cnn" else 512)
    x = torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    y = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(1)).to(device)
    print(f"\n== {name} (width {width or 'default'}), {n} images of {channels}x{size}x{size}, device {device}")

    def model(channels_last: bool) -> torch.nn.Module:
        m = build_model(name, 10, channels, width, seed=0).to(device)
        if channels_last:
            m = m.to(memory_format=torch.channels_last)
        reset_bn(m, x[:256], precision="fp32")      # realistic BN statistics; leaves eval mode
        return m

    x_cl = x.contiguous(memory_format=torch.channels_last)
    nchw, cl = model(False), model(True)
    folded = FoldedBN(cl).module

    def evaluation(module, inputs, precision):
        def run():
            with torch.inference_mode(), autocast(precision, device):
                for start in range(0, n, args.eval_batch):
                    module(inputs[start:start + args.eval_batch])
        return run

    variants = {"nchw_fp32": evaluation(nchw, x, "fp32"), "cl_fp32": evaluation(cl, x_cl, "fp32"),
                "cl_folded_fp32": evaluation(folded, x_cl, "fp32"),
                "cl_folded_bf16": evaluation(folded, x_cl, "bf16")}
    compile_s = None
    if args.compile:
        compiled = torch.compile(folded)
        started = time.perf_counter()
        evaluation(compiled, x_cl, "bf16")()
        compile_s = time.perf_counter() - started
        variants["compiled_bf16"] = evaluation(compiled, x_cl, "bf16")
        print(f"torch.compile: first call {compile_s:.1f} s")
    for run in variants.values():
        run()                                       # warm-up
    times, _ = common.alternate(variants, args.repeats, device)
    eval_rate = {k: n / common.median(v) for k, v in times.items()}

    batch = min(args.train_batch, n)

    def training(channels_last: bool):
        m = build_model(name, 10, channels, width, seed=0).to(device)
        if channels_last:
            m = m.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        inputs = x_cl if channels_last else x
        m.train()

        def run():
            for start in range(0, n - batch + 1, batch):
                loss = F.cross_entropy(m(inputs[start:start + batch]), y[start:start + batch])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            loss.item()
        return run

    steps = n // batch * batch
    train_variants = {"nchw_fp32": training(False), "cl_fp32": training(True)}
    for run in train_variants.values():
        run()
    train_times, _ = common.alternate(train_variants, args.repeats, device)
    train_rate = {k: steps / common.median(v) for k, v in train_times.items()}

    base = eval_rate["nchw_fp32"]
    print("evaluation:")
    for k, v in eval_rate.items():
        print(f"  {k:<16} {v:9.0f} images/s  {v / base:5.2f}x")
    print("training:")
    for k, v in train_rate.items():
        print(f"  {k:<16} {v:9.0f} images/s  {v / train_rate['nchw_fp32']:5.2f}x")
    return {"model": name, "width": width, "images": n, "eval_batch": args.eval_batch,
            "train_batch": batch, "repeats": args.repeats,
            "eval_images_per_s": eval_rate, "eval_speedup": {k: v / base for k, v in eval_rate.items()},
            "eval_seconds": {k: common.summary(v) for k, v in times.items()},
            "train_images_per_s": train_rate,
            "train_speedup": {k: v / train_rate["nchw_fp32"] for k, v in train_rate.items()},
            "compile_first_call_s": compile_s}


def main(argv=None) -> dict:
    args = parse_args(argv)
    device, env = common.start(args)
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        raise SystemExit(f"--models: {', '.join(unknown)} not known; choose from {', '.join(MODELS)}")
    results = [bench_model(name, args, device) for name in names]
    payload = {"benchmark": "layout_ab", "command": common.command_line(), "environment": env, "results": results}
    common.write_json("layout_ab", payload, args.out, args.tag)
    return payload


if __name__ == "__main__":
    main()
