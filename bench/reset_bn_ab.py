"""A/B of the BN re-estimation hook in `tasks.paths.reset_bn`, three versions: `float64_copy` (the
original: every BN input copied to float64, then mean and centred sum of squares), `var_mean` (an
intermediate step: per-batch `torch.var_mean` in float32), `bn_buffers` (current: BN runs with
momentum 1.0 and the hook reads the batch statistics BN itself computed); per-batch moments are pooled
in float64 in all three. Plus a plain train-mode forward pass: the floor.

    python -m bench.reset_bn_ab                 # ~1 min on 2 cores
    python -m bench.reset_bn_ab --quick
"""
from __future__ import annotations


import torch

import tasks.paths as paths
from bench import common
from tasks.models import build_model


class Float64CopyMoments(paths._PooledMoments):
    """The hook as it was: a float64 copy of every BN input."""

    def moments(self, x):
        flat = x.transpose(0, 1).reshape(x.shape[1], -1).double()
        mean = flat.mean(dim=1)
        return flat.shape[1], mean, ((flat - mean[:, None]) ** 2).sum(dim=1)

    def __call__(self, module, inputs, output=None):
        self.add(*self.moments(inputs[0].detach()))


class VarMeanMoments(Float64CopyMoments):
    """Intermediate version: one float32 var_mean per batch and layer."""

    def moments(self, x):
        var, mean = torch.var_mean(x.float(), dim=[0, *range(2, x.dim())], correction=0)
        n = x.numel() // x.shape[1]
        return n, mean.double(), var.double() * n


def main(argv=None) -> dict:
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--vgg-width", type=int, default=64)
    args = p.parse_args(argv)
    if args.quick:
        args.samples, args.vgg_width, args.repeats = 64, 4, args.repeats or 1
    device = common.setup(args)
    env = common.environment(device)
    current = paths._PooledMoments
    results = []
    for name in ("small_cnn", "vgg13"):
        if name == "small_cnn":
            x, model = common.digits_data(0.0, device=device).cue.train_clean.x, build_model(name, 10, 1, seed=0)
        else:
            x = common.synthetic_cifar(args.samples, 8, device=device).cue.train_clean.x
            model = build_model(name, 10, 3, args.vgg_width, seed=0)
        x = x[:args.samples]
        model.to(device)

        def with_hook(cls):
            def run():
                paths._PooledMoments = cls
                try:
                    paths.reset_bn(model, x, 1024)
                finally:
                    paths._PooledMoments = current
            return run

        def forward_only():
            model.train()
            with torch.no_grad():
                for start in range(0, len(x), 1024):
                    model(x[start:start + 1024].float())

        print(f"== {name}: reset_bn on {len(x)} samples")
        with_hook(current)()
        times, _ = common.alternate({"float64_copy": with_hook(Float64CopyMoments),
                                     "var_mean": with_hook(VarMeanMoments), "bn_buffers": with_hook(current),
                                     "forward_only": forward_only}, args.repeats or 5, device)
        med = {k: common.median(v) for k, v in times.items()}
        print("   " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in med.items())
              + f": bn_buffers is {med['float64_copy'] / med['bn_buffers']:.2f}x faster than float64_copy")
        results.append({"model": name, "samples": len(x), **{f"{k}_s": common.summary(v) for k, v in times.items()},
                        "speedup": med["float64_copy"] / med["bn_buffers"]})
    payload = {"benchmark": "reset_bn_ab", "command": common.command_line(), "environment": env, "results": results}
    common.write_json("reset_bn_ab", payload, args.out, args.tag)
    return payload


if __name__ == "__main__":
    main()
