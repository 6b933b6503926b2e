"""The Python API for notebooks (`orchestrator.api`): a sweep's repr, its barrier summary, its judged
claims (objects and a frame), its path curves as a tidy frame, and its models loaded from their
checkpoints, ready to evaluate (checked against the accuracies the tasks recorded)."""
from __future__ import annotations

import dataclasses
import json
import re

import pandas as pd
import pytest
import torch

import orchestrator as mmc
from orchestrator import vocab
from orchestrator.report import claims as claims_lib
from orchestrator.report.build import summary_text
from orchestrator.storage.layout import Storage, SweepLayout
from tasks import data as data_lib
from tasks.evaluate import evaluate_sets
from tasks.settings import from_identity
from tests.conftest import write_spec
from tests.support.report_data import ALPHAS, EVAL_SETS, SEEDS, synthetic_sweep, write_sweep


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("api") / "runs"
    write_sweep(SweepLayout(Storage(root), "syn"), synthetic_sweep())
    return mmc.open_sweep(str(root / "syn"))


def test_repr_names_the_sweep_its_storage_progress_and_tables(synthetic):
    text = repr(synthetic)
    n = len(synthetic.plan)
    assert text.startswith("<Sweep 'syn' at ") and synthetic.layout.root in text
    assert f"{n}/{n} tasks finished" in text and "tasks, evaluations, train_curves, paths, barriers" in text


def test_summary_is_the_reports_barrier_summary(synthetic):
    summary = synthetic.summary()
    expected, _ = summary_text(synthetic.layout)
    pd.testing.assert_frame_equal(summary.reset_index(drop=True), expected.reset_index(drop=True))
    row = summary[(summary.pair_type == "cue~nocue") & (summary.path_kind == "linear") & (summary.eval_set == "nocue")
                  & (summary.metric == "loss") & (summary.definition == "chord")]
    assert len(row) == 1 and int(row["n"].iloc[0]) == len(SEEDS)


def test_reading_a_table_loads_neither_torch_nor_matplotlib(synthetic):
    """`open_sweep(DIR).table(...)` in a fresh interpreter in which importing torch or matplotlib fails
    (the report's figures loaded matplotlib with the API: 0.3 s of a 10^5-task sweep's 2-3 s `paths`
    read); the same rows as in this process."""
    import subprocess
    import sys

    code = f"""
import sys
sys.modules["torch"] = sys.modules["matplotlib"] = None
import orchestrator as mmc
sweep = mmc.open_sweep({synthetic.layout.root!r})
print("rows", [len(sweep.table(t)) for t in {list(vocab.TABLES)!r}])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"rows {[len(synthetic.table(t)) for t in vocab.TABLES]}" in out.stdout


def test_claims_are_objects_with_verdicts_and_a_frame(synthetic):
    claims = synthetic.claims()
    _, text = summary_text(synthetic.layout)       # what `mmc-sweep run` prints: one line per claim
    printed = re.findall(r"^\((\w)\) ([A-Z ]+?)(?: \([^)]*\))?: ", text, re.M)
    assert [(c.key, c.verdict.upper()) for c in claims] == printed and [c.key for c in claims] == ["a", "b", "c", "d"]
    assert claims[0].verdict == claims_lib.HOLDS and claims[0].sentence().startswith("Holds")
    frame = claims.frame()
    assert list(frame["claim"]) == ["a", "b", "c", "d"] and list(frame["verdict"]) == [c.badge() for c in claims]
    assert list(frame["context"]) == [c.context for c in claims] and list(frame["sentence"]) == [c.sentence() for c in claims]
    checks = claims.frame(checks=True)
    assert len(checks) == sum(len(c.checks) for c in claims) and set(checks["outcome"]) <= set(claims_lib.MARKS)
    every = [(c.key, k.text, k.outcome, k.evidence, k.required) for c in claims for k in c.checks]
    assert list(checks[["claim", "check", "outcome", "evidence", "required"]].itertuples(index=False, name=None)) == every
    assert list(checks["reason"]) == [k.reason for c in claims for k in c.checks]
    assert not all(required for *_, required in every)          # supporting comparisons are told apart


def test_path_curves_are_one_row_per_pair_and_alpha(synthetic):
    curves = synthetic.path_curves(pair_type="cue~nocue", eval_set="nocue", path_kind="linear")
    assert len(curves) == len(SEEDS) * len(ALPHAS)
    assert not curves.duplicated(["task_id", "alpha"]).any() and "eval_set" not in curves.columns
    assert set(curves["pair_type"]) == {"cue~nocue"} and set(curves["path_kind"]) == {"linear"}
    first = curves[curves["task_id"] == curves["task_id"].iloc[0]]
    assert list(first["alpha"]) == sorted(ALPHAS)
    assert {"loss", "acc", "agree_a", "agree_b", "reliance_randimg", "reliance_randcue", "seed"} <= set(curves.columns)
    every_set = synthetic.path_curves(pair_type="cue~nocue", path_kind="aligned")
    assert len(every_set) == len(SEEDS) * len(ALPHAS) * len(EVAL_SETS) and set(every_set["alignment"]) == {"activation"}
    with pytest.raises(ValueError, match=r"`eval_set`='clean' is not in the `paths` table .* it has: cue, nocue, "
                                         r"randcue, randimg"):
        synthetic.path_curves(eval_set="clean")


def test_load_model_needs_a_model_task(synthetic):
    with pytest.raises(KeyError, match="not a task of sweep syn"):
        synthetic.load_model("pretrain-0000")
    path_eval = synthetic.plan.loc[synthetic.plan["kind"] == vocab.PATH_EVAL, "task_id"].iloc[0]
    with pytest.raises(ValueError, match="path_eval task, which has no model.*endpoint_a"):
        synthetic.load_model(path_eval)


@pytest.fixture(scope="module")
def real(tmp_path_factory, ray_local):
    """A tiny real sweep, run through the API: two pretrained models, a naive fine-tuning, a midpoint and a
    weight alignment, their paths."""
    tmp = tmp_path_factory.mktemp("api-real")
    spec = write_spec(tmp, "smoke", finetune={"methods": ["naive"]},
                      paths={"pairs": ["cue~nocue", "pretrained~ft"], "alignments": ["weight"]},
                      mlflow={"enabled": False})
    outcome = mmc.run(str(spec), storage=str(tmp / "mmc-runs"), report=False)
    assert outcome.ok, outcome.counts
    return mmc.open_sweep(str(tmp / "mmc-runs" / "smoke"))


@pytest.mark.slow
def test_load_model_gives_each_trained_model_ready_to_evaluate(real):
    evaluations = real.table(vocab.EVALUATIONS)
    plan = real.plan.set_index("task_id")
    for task_id in evaluations["task_id"].unique():          # pretrained and fine-tuned models
        model = real.load_model(task_id)
        assert not model.training
        config = json.loads(plan.loc[task_id, "config_json"])
        settings = from_identity(data_lib.DataSettings, {k: v for k, v in config["data"].items() if k != "version"})
        data = data_lib.load_cue_data(dataclasses.replace(settings, root=None), torch.device("cpu"))
        got = {r["eval_set"]: r["acc"] for r in evaluate_sets(model, data.eval_sets, device=torch.device("cpu"))}
        recorded = evaluations[evaluations["task_id"] == task_id].set_index("eval_set")["acc"].to_dict()
        assert got == pytest.approx(recorded, abs=1e-6), task_id
    for kind in (vocab.MIDPOINT, vocab.ALIGN):                 # the midpoint's control point, B permuted onto A
        task_id = real.plan.loc[real.plan["kind"] == kind, "task_id"].iloc[0]
        model = real.load_model(task_id)
        assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.slow
def test_a_real_run_records_the_curve_lr_epoch_times_and_progress(real):
    curves = real.table(vocab.TRAIN_CURVES)
    assert curves["lr"].notna().all() and (curves["duration_s"] > 0).all()
    for task_id, kind in zip(real.plan["task_id"], real.plan["kind"]):
        if kind in vocab.TRAINING_KINDS:
            record = json.loads(real.layout.storage.read_bytes(real.layout.progress_file(kind, task_id)))
            assert record["epoch"] == record["epochs"] == len(curves[curves["task_id"] == task_id])
    assert repr(real).startswith("<Sweep 'smoke' at ") and f"{len(real.plan)}/{len(real.plan)} tasks finished" in repr(real)


@pytest.mark.slow
def test_readme_python_block_runs_on_a_real_sweep(real, capsys, monkeypatch):
    """README's "From Python" block, as written, from the directory that holds `mmc-runs/`."""
    from tests.test_readme_queries import readme_block

    monkeypatch.chdir(real.layout.storage.root.rsplit("/", 1)[0])
    namespace: dict = {}
    exec(compile(readme_block("<!-- tested: readme-python -->"), "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "<Sweep 'smoke' at " in out and "(a) " in out and "reliance_randimg" in out
    assert isinstance(namespace["model"], torch.nn.Module) and not namespace["model"].training
    assert len(namespace["curves"]) == 3 and list(namespace["curves"]["alpha"]) == [0.0, 0.5, 1.0]


def test_the_api_run_stays_callable_after_the_run_package_is_imported(tmp_path):
    """Importing `orchestrator.run.<module>` binds `orchestrator.run` to the package; it still runs a sweep."""
    import subprocess
    import sys
    code = ("import orchestrator as mmc\nimport orchestrator.run.sweep\n"
            "try:\n    mmc.run('/nonexistent/spec.yaml')\nexcept Exception as exc:\n    print(type(exc).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0 and "not callable" not in out.stderr and out.stdout.strip() != "TypeError", out


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A synthetic sweep of `finetune.lam` over two values (fine-tuning and its pairs), one earlier spec
    version's stale row left in its `barriers` table, one fine-tuning failed, one path's rows stored in
    reverse order of alpha."""
    lams = (1.0, 3.0)
    root = tmp_path_factory.mktemp("api-swept") / "runs"
    layout = SweepLayout(Storage(root), "lam")
    data = synthetic_sweep(seeds=(0, 1), lams=lams, pair_types=("cue~nocue", "pretrained~ft:cbft"))
    failed = next(t for t in data[vocab.TASKS] if t.startswith("finetune-naive"))
    data[vocab.TASKS][failed] = [dict(data[vocab.TASKS][failed][0], status=vocab.FAILED, error="RuntimeError: boom")]
    reverse = next(t for t in data[vocab.PATHS] if "cue_nocue-linear" in t)
    data[vocab.PATHS][reverse] = data[vocab.PATHS][reverse][::-1]
    write_sweep(layout, data, lams=lams)
    from orchestrator.results import tables as tables_lib
    some = next(iter(data[vocab.BARRIERS]))
    tables_lib.write_fragment(layout, vocab.BARRIERS, "path_eval-of-an-older-spec", data[vocab.BARRIERS][some])
    return mmc.open_sweep(str(root / "lam")), lams, len(data[vocab.BARRIERS][some])


def test_tables_hold_the_plans_rows_unless_asked_for_every_row(swept):
    sweep, _, stale = swept
    planned = sweep.table(vocab.BARRIERS)
    assert "path_eval-of-an-older-spec" not in set(planned["task_id"])
    every = sweep.table(vocab.BARRIERS, planned_only=False)
    assert len(every) == len(planned) + stale and "path_eval-of-an-older-spec" in set(every["task_id"])
    assert len(sweep.tables(planned_only=False)[vocab.BARRIERS]) == len(every)
    assert len(sweep.tables()[vocab.BARRIERS]) == len(planned)


def test_repr_counts_only_finished_tasks(swept):
    sweep = swept[0]
    n = len(sweep.plan)
    assert f"{n - 1}/{n} tasks finished" in repr(sweep)


def test_repr_counts_a_task_whose_outputs_were_damaged_as_status_does(synthetic, tmp_path):
    """A finished task's marker gone (or an output changed since): its `tasks` row still says finished, but it
    is not, as `mmc-sweep status` counts (a damaged copy printed 144/144 where status said 72)."""
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(synthetic.layout.root, copy / synthetic.layout.sweep)
    sweep = mmc.open_sweep(str(copy / synthetic.layout.sweep))
    n = len(sweep.plan)
    task = sweep.plan.iloc[0]
    marker = copy / synthetic.layout.sweep / "tasks" / task["kind"] / task["task_id"] / "done.json"
    assert marker.exists()
    marker.unlink()
    assert f"{n - 1}/{n} tasks finished" in repr(sweep)


def test_summary_and_path_curves_carry_the_swept_settings(swept):
    sweep, lams, _ = swept
    summary = sweep.summary()
    cbft = summary[summary["pair_type"] == "pretrained~ft:cbft"]
    assert set(cbft["finetune.lam"]) == set(lams) and summary.loc[summary["pair_type"] == "cue~nocue", "finetune.lam"].isna().all()
    curves = sweep.path_curves(pair_type="pretrained~ft:cbft", eval_set="nocue")
    assert set(curves["finetune.lam"]) == set(lams) and len(curves) == 2 * len(lams) * len(ALPHAS)


def test_path_curves_are_sorted_by_alpha_whatever_the_stored_order(swept):
    curves = swept[0].path_curves(pair_type="cue~nocue", eval_set="cue", path_kind="linear")
    for _, curve in curves.groupby("task_id"):
        assert list(curve["alpha"]) == sorted(ALPHAS)


def test_the_frames_verdict_is_the_one_printed_with_what_a_holds_does_not_cover():
    """`frame()["verdict"] == "holds"` must not select a claim that holds only where it could be tested: the
    column says what the console and the report print; a check's frame gives each check's reason."""
    from orchestrator.api import Claims
    from orchestrator.report.comparisons import UNTESTABLE, YES
    from orchestrator.report.verdicts import Check, Claim
    partly = Claim("b", "x", checks=[Check("one", YES, "+1", "g"), Check("two", UNTESTABLE, "—", "g", "underpowered")])
    whole = Claim("a", "y", checks=[Check("one", YES, "+1", "g")])
    frame = Claims([whole, partly]).frame()
    assert list(frame["verdict"]) == ["holds", "holds where it can be tested"]
    assert list(Claims([partly]).frame(checks=True)["reason"]) == ["", "underpowered"]
