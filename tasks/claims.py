"""Reproduce the paper's qualitative claims on the built-in digits data, in one process, no Ray.

    python -m tasks.claims                 # 3 seeds, small_cnn, p = 0.8; a few minutes on 2 CPUs

Per seed: a cue model (cue proportion p) and a no-cue model are pretrained; the cue model is
fine-tuned with naive fine-tuning and CBFT on a small clean subset; linear paths (cue~nocue,
pretrained~naive, pretrained~cbft) and a trained quadratic path (cue~nocue) are evaluated on
the four counterfactual sets. It prints accuracies, loss barriers, and a PASS/FAIL line per claim
(a)-(d) of the core-engine issue. The same science runs inside `mmc-sweep run` (the default sweep).
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

from tasks import data as data_lib
from tasks import finetune as finetune_lib
from tasks import paths as paths_lib
from tasks.evaluate import evaluate_sets
from tasks.models import build_model
from tasks.seeding import derive_seed
from tasks.train import OptimSettings, cross_entropy_objective, fit

# The defaults of the built-in sweep (orchestrator/sweeps/default.yaml mirrors them).
PRETRAIN = OptimSettings(epochs=20, lr=0.05, batch_size=128, schedule="cosine")
FINETUNE = finetune_lib.FinetuneSettings(clean_subset=200, epochs=30, lr=0.02, batch_size=64, llrt_epochs=100,
                                          llrt_lr=2.0, lam=3.0)
MIDPOINT = paths_lib.MidpointSettings(epochs=10, lr=0.05, batch_size=128, schedule="cosine")
PATH = paths_lib.PathSettings(num_alphas=11, bn_reset_samples=500)


def pretrain(model_name: str, p: float, seed: int, settings: OptimSettings | None = None):
    settings = settings or PRETRAIN
    data = data_lib.load_cue_data(data_lib.DataSettings(cue_proportion=p, seed=seed))
    torch.manual_seed(derive_seed(seed, 1))
    model = build_model(model_name, data.num_classes, data.in_channels)
    fit(model, cross_entropy_objective(data.train, settings.batch_size, seed), model.parameters(), settings,
        seed=seed, device="cpu")
    return model, data


def accuracies(model, data) -> dict[str, float]:
    return {r["eval_set"]: r["acc"] for r in evaluate_sets(model, data.eval_sets)}


def path_barriers(model, a, b, data, midpoint=None) -> dict[str, float]:
    rows = paths_lib.evaluate_path(model, a, b, midpoint=midpoint, bn_data=data.train_clean.x,
                                   sets=data.eval_sets, settings=PATH, device="cpu")
    return {r["eval_set"]: r["value"] for r in paths_lib.barriers(rows)
            if r["metric"] == "loss" and r["definition"] == "chord"}


def state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def run_seed(model_name: str, p: float, seed: int) -> dict:
    cue_model, cue_data = pretrain(model_name, p, seed)
    nocue_model, nocue_data = pretrain(model_name, 0.0, seed)
    out = {"acc": {"cue model": accuracies(cue_model, cue_data), "no-cue model": accuracies(nocue_model, cue_data)},
           "barrier": {}}
    for method in ("naive", "cbft"):
        model = build_model(model_name, cue_data.num_classes, cue_data.in_channels)
        model.load_state_dict(state(cue_model))
        finetune_lib.finetune(model, method, cue_data, FINETUNE, seed=seed, device="cpu")
        out["acc"][f"ft:{method}"] = accuracies(model, cue_data)
        out["barrier"][f"pretrained~ft:{method} linear"] = path_barriers(model, state(cue_model), state(model), cue_data)
    probe = build_model(model_name, cue_data.num_classes, cue_data.in_channels)
    out["barrier"]["cue~nocue linear"] = path_barriers(probe, state(cue_model), state(nocue_model), cue_data)
    train = data_lib.Split(torch.cat([cue_data.train.x, nocue_data.train.x]),
                           torch.cat([cue_data.train.y, nocue_data.train.y]))
    mid, _ = paths_lib.train_midpoint(probe, state(cue_model), state(nocue_model), train, MIDPOINT,
                                      seed=seed, device="cpu")
    out["barrier"]["cue~nocue quadratic"] = path_barriers(probe, state(cue_model), state(nocue_model), cue_data,
                                                          midpoint=mid)
    return out


def apply_overrides(items: list[str]) -> None:
    """`section.key=value` for section in pretrain, finetune, midpoint, path."""
    sections = {"pretrain": "PRETRAIN", "finetune": "FINETUNE", "midpoint": "MIDPOINT", "path": "PATH"}
    for item in items:
        key, _, value = item.partition("=")
        section, _, field = key.partition(".")
        if section not in sections:
            raise SystemExit(f"--set {item}: unknown section `{section}`; allowed: {', '.join(sections)}")
        name = sections[section]
        current = globals()[name]
        old = getattr(current, field)
        typed = type(old)(value) if old is not None else float(value)
        globals()[name] = replace(current, **{field: typed})


def mean(values) -> float:
    return statistics.fmean(values)


def check_claims(results: list[dict], num_classes: int = 10) -> list[tuple[str, bool, str]]:
    """The claims (a)-(d), each as (name, passed, evidence)."""
    chance = 1.0 / num_classes

    def acc(row, s):
        return mean(r["acc"][row][s] for r in results)

    def bar(path, s):
        return mean(r["barrier"][path][s] for r in results)

    sets = data_lib.EVAL_SETS
    a = (acc("cue model", "randimg") >= 3 * chance and acc("cue model", "randcue") < acc("cue model", "nocue") - 0.2
         and acc("no-cue model", "randimg") <= 2 * chance)
    b = acc("ft:naive", "randimg") >= 3 * chance and all(bar("pretrained~ft:naive linear", s) < 0.1 for s in sets)
    c = (acc("ft:cbft", "randimg") <= 2 * chance
         and abs(acc("ft:cbft", "randcue") - acc("ft:cbft", "nocue")) <= 0.05
         and acc("ft:cbft", "nocue") >= acc("ft:naive", "nocue") - 0.05
         and bar("pretrained~ft:cbft linear", "cue") > 0.1)
    d = all(bar("cue~nocue quadratic", s) < 0.5 * bar("cue~nocue linear", s) for s in ("nocue", "cue"))
    return [
        ("(a) cue model relies on the cue", a,
         f"cue model randimg {acc('cue model', 'randimg'):.2f} (chance {chance:.2f}), randcue "
         f"{acc('cue model', 'randcue'):.2f} vs nocue {acc('cue model', 'nocue'):.2f}; no-cue model randimg "
         f"{acc('no-cue model', 'randimg'):.2f}"),
        ("(b) naive FT keeps the cue and stays linearly connected", b,
         f"randimg {acc('ft:naive', 'randimg'):.2f}; max loss barrier to pretrained "
         f"{max(bar('pretrained~ft:naive linear', s) for s in sets):.3f}"),
        ("(c) CBFT removes the cue and leaves the linear path", c,
         f"randimg {acc('ft:cbft', 'randimg'):.2f}, randcue {acc('ft:cbft', 'randcue'):.2f} vs nocue "
         f"{acc('ft:cbft', 'nocue'):.2f} (naive {acc('ft:naive', 'nocue'):.2f}); loss barrier on cue "
         f"{bar('pretrained~ft:cbft linear', 'cue'):.3f}"),
        ("(d) quadratic path beats linear between cue and no-cue models", d,
         "loss barrier linear/quadratic: " + ", ".join(
             f"{s} {bar('cue~nocue linear', s):.3f}/{bar('cue~nocue quadratic', s):.3f}" for s in sets)),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--cue-proportion", type=float, default=0.8)
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a setting, e.g. finetune.lam=2 pretrain.epochs=30 midpoint.epochs=5")
    args = parser.parse_args(argv)
    apply_overrides(args.set)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    start = time.time()
    results = []
    for seed in args.seeds:
        t0 = time.time()
        results.append(run_seed(args.model, args.cue_proportion, seed))
        print(f"seed {seed} done in {time.time() - t0:.1f}s", flush=True)
    print(f"\naccuracy (mean over seeds {args.seeds}); sets: " + ", ".join(data_lib.EVAL_SETS))
    for row in results[0]["acc"]:
        print(f"  {row:<14}" + "".join(f"{mean(r['acc'][row][s] for r in results):>9.3f}" for s in data_lib.EVAL_SETS))
    print("\nloss barrier (chord), mean over seeds")
    for path in results[0]["barrier"]:
        print(f"  {path:<30}" + "".join(f"{mean(r['barrier'][path][s] for r in results):>9.3f}"
                                        for s in data_lib.EVAL_SETS))
    print()
    ok = True
    for name, passed, evidence in check_claims(results):
        ok &= passed
        print(f"{'PASS' if passed else 'FAIL'} {name}: {evidence}")
    print(f"\ntotal {time.time() - start:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
