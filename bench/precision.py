"""How far does bf16 evaluation move path barriers from fp32? Re-evaluates the linear and quadratic
paths of a finished sweep at both precisions and reports the largest deviations.

    python -m bench.precision mmc-runs/default [--max-paths 30]

The documented bound for `paths.precision` (docs/SCIENCE.md) is what this prints. The default
precision is fp32 because bf16 broke the bound asked of it (every barrier within 0.005 absolute or
2% relative of fp32, whichever is larger) on the built-in sweep; bf16 stays available as a setting.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np

from bench.common import base_parser, start, write_json
from orchestrator import vocab
from orchestrator.results import outputs
from orchestrator.api import open_sweep
from tasks import data as data_lib
from tasks import paths as paths_lib
from tasks.evaluate import native_bf16
from tasks.models import ModelSettings, build_model
from tasks.settings import from_identity

TOLERANCE_ABS, TOLERANCE_REL = 0.005, 0.02


def _state(layout, plan, task_id):
    kind = plan.loc[plan.task_id == task_id, "kind"].iloc[0]
    return outputs.load_checkpoint(layout, kind, task_id)[0]


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("sweep", help="a finished sweep directory, e.g. mmc-runs/default")
    parser.add_argument("--max-paths", type=int, default=30)
    args = parser.parse_args(argv)
    device, env = start(args)
    sweep = open_sweep(args.sweep)
    plan, layout = sweep.plan, sweep.layout
    todo = plan[(plan.kind == vocab.PATH_EVAL) & plan.path_kind.isin([vocab.LINEAR, vocab.QUADRATIC])]
    todo = todo.head(args.max_paths)
    deviations, worst = [], None
    for row in todo.itertuples():
        config = json.loads(row.config_json)
        data_settings = from_identity(data_lib.DataSettings, {k: v for k, v in config["data"].items() if k != "version"})
        data = data_lib.load_cue_data(dataclasses.replace(data_settings, root=sweep.spec["data"].get("root")), device)
        model_settings = from_identity(ModelSettings, {k: v for k, v in config["model"].items() if k != "version"})
        a, b = (_state(layout, plan, t) for t in config["endpoints"])
        mid = _state(layout, plan, config["via"]) if config["path_kind"] == vocab.QUADRATIC else None
        settings = from_identity(paths_lib.PathSettings, config.get("path", {}))
        barrier = {}
        for precision in ("fp32", "bf16"):
            model = build_model(model_settings.name, data.num_classes, data.in_channels, model_settings.width)
            rows = paths_lib.evaluate_path(model, a, b, midpoint=mid, bn_data=data.train_clean.x, sets=data.eval_sets,
                                           settings=dataclasses.replace(settings, precision=precision),
                                           device=device, seed=config.get("seed", 0))
            barrier[precision] = {(r["eval_set"], r["metric"], r["definition"]): r["value"]
                                  for r in paths_lib.barriers(rows)}
        for key, value in barrier["fp32"].items():
            diff = abs(barrier["bf16"][key] - value)
            allowed = max(TOLERANCE_ABS, TOLERANCE_REL * abs(value))
            deviations.append((diff, allowed, value))
            if worst is None or diff / allowed > worst[0]:
                worst = (diff / allowed, row.task_id, key, value, barrier["bf16"][key])
    diffs = np.array([d for d, _, _ in deviations])
    outside = sum(d > a for d, a, _ in deviations)
    result = {"paths": len(todo), "barriers": len(deviations), "native_bf16": native_bf16(device),
              "max_abs_deviation": float(diffs.max()), "median_abs_deviation": float(np.median(diffs)),
              "outside_tolerance": int(outside), "tolerance": f"max({TOLERANCE_ABS}, {TOLERANCE_REL:.0%} of fp32)",
              "worst": {"task": worst[1], "barrier": list(worst[2]), "fp32": worst[3], "bf16": worst[4]},
              "env": env}
    print(json.dumps({k: v for k, v in result.items() if k != "env"}, indent=1))
    write_json("precision", result, args.out, args.tag)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
