"""Which figures the report draws (jobs, their options, orders and chance), their cache keys (what a
figure depends on), how many worker processes draw them, and reusing/removing figures between
reports. Drawing is replaced by a fake where only the bookkeeping is under test."""

from __future__ import annotations

import json
import numpy as np
import pandas as pd
import pytest

from orchestrator import vocab
from orchestrator.report import figures
from orchestrator.report.mechanism_map import MechanismMap, Threshold
from orchestrator.storage.layout import Storage, SweepLayout
from tasks.settings.finetune import FINETUNE_METHOD_NAMES
from tests.support.report_data import render, synthetic_sweep

PAIR_TYPES = ("pretrained~ft:cbft", "cue~cue", "pretrained~ft:naive", "cue~nocue")


def _results(data) -> dict[str, pd.DataFrame]:
    """table -> DataFrame of every row of `synthetic_sweep`'s output."""
    return {t: pd.DataFrame([{"task_id": tid, **r} for tid, rows in data[t].items() for r in rows]) for t in vocab.TABLES}


@pytest.fixture(scope="module")
def results() -> dict[str, pd.DataFrame]:
    """A small sweep, and a population's pairs (pair type `population`, huge losses) next to it."""
    out = _results(synthetic_sweep(seeds=(0, 1), pair_types=PAIR_TYPES))
    for table in (vocab.PATHS, vocab.BARRIERS):
        frame = out[table]
        population = frame[frame["pair_type"] == "cue~nocue"].assign(pair_type=vocab.POPULATION, task_id="pop-1")
        if table == vocab.PATHS:
            population = population.assign(loss=100.0)
        else:
            population = population.assign(value=100.0)
        out[table] = pd.concat([frame, population], ignore_index=True)
    return out


@pytest.fixture(scope="module")
def jobs(results) -> list[figures.FigureJob]:
    return figures.figure_jobs(results)


def test_one_path_figure_per_pair_type_in_the_pair_order_and_none_for_the_population(jobs):
    """Main pairs in vocab order (cue~nocue before cue~cue), fine-tuning pairs in the registry's method
    order (naive before cbft); the population's pairs are drawn by its maps only."""
    paths = [j for j in jobs if j.section == figures.PATHS_SECTION]
    assert [j.options["pair_type"] for j in paths] == ["cue~nocue", "cue~cue", "pretrained~ft:naive",
                                                       "pretrained~ft:cbft"]
    assert [j.name for j in paths][0] == "paths_cue-nocue.png"
    assert all(vocab.POPULATION not in set(j.frames["paths"]["pair_type"]) for j in jobs if "paths" in j.frames)


def test_the_barrier_figure_shows_loss_and_accuracy_in_method_order_without_the_population(jobs):
    (job,) = [j for j in jobs if j.section == figures.BARRIERS_SECTION]
    assert job.kind == "barriers" and job.options["metric"] == ["loss", "acc"]
    assert list(job.options["method_order"]) == list(FINETUNE_METHOD_NAMES)
    assert vocab.POPULATION not in set(job.frames["barriers"]["pair_type"])
    assert set(job.frames["barriers"]["definition"]) == {"chord"}


def test_chance_is_one_over_the_datasets_classes_on_path_and_finetune_figures(jobs):
    """digits has 10 classes: chance 0.1, on the path figures (the title's note) and Table 1's dotted line."""
    kinds = {j.kind: j for j in jobs}
    assert kinds["path"].options["chance"] == pytest.approx(0.1)
    assert kinds["table1"].options["chance"] == pytest.approx(0.1)
    assert list(kinds["table1"].frames["long"]["row"].unique())[:2] == ["pretrained (no cue)", "pretrained (cue)"]


def test_a_pair_types_loss_limits_fit_its_own_rows_only(results, jobs):
    """The loss axes are shared by every figure of one pair type: (0, 1.05 × its highest loss per set),
    not stretched by another pair type's (or the population's) losses."""
    paths = results[vocab.PATHS]
    (job,) = [j for j in jobs if j.options.get("pair_type") == "cue~cue"]
    own = paths[paths["pair_type"] == "cue~cue"].groupby("eval_set")["loss"].max()
    assert set(job.options["loss_limits"]) == set(own.index)
    for eval_set, high in own.items():
        assert job.options["loss_limits"][eval_set] == [0.0, pytest.approx(1.05 * high)]


def _paths_at_two_proportions(results, pair_type: str) -> dict:
    """Only `pair_type`'s paths, at its cue proportion and again at 0.5 (no barriers, evaluations, curves)."""
    paths = results[vocab.PATHS]
    one = paths[paths["pair_type"] == pair_type]
    half = one.assign(cue_proportion=0.5, task_id=one["task_id"] + "-half")
    return {**results, vocab.PATHS: pd.concat([one, half], ignore_index=True),
            vocab.BARRIERS: results[vocab.BARRIERS].iloc[:0], vocab.EVALUATIONS: results[vocab.EVALUATIONS].iloc[:0],
            vocab.TRAIN_CURVES: results[vocab.TRAIN_CURVES].iloc[:0]}


def test_a_pair_type_with_two_cue_proportions_gets_a_figure_per_proportion_labelled_in_percent(results):
    jobs = figures.figure_jobs(_paths_at_two_proportions(results, "cue~cue"))
    assert [j.name for j in jobs] == ["paths_cue-cue_cue-proportion-0.5.png", "paths_cue-cue_cue-proportion-0.8.png"]
    assert [j.options["subtitle"] for j in jobs] == ["cue_proportion = 50%", "cue_proportion = 80%"]
    assert jobs[0].options["loss_limits"] == jobs[1].options["loss_limits"]        # shared by the facets


# ---------------------------------------------------------------------------------------------
# Keys: a figure is redrawn when (and only when) what it depends on changed
# ---------------------------------------------------------------------------------------------

def _job(**options) -> figures.FigureJob:
    frame = pd.DataFrame({"alpha": [0.0, 1.0], "loss": [0.5, 0.7]})
    return figures.FigureJob("x.png", figures.PATHS_SECTION, "h", "t", "c", "path", {"paths": frame},
                             {"pair_type": "cue~nocue", **options})


def test_a_figures_key_changes_with_its_options_its_columns_and_the_code_version_and_only_then():
    base = _job(chance=0.1)
    assert base.key("v1") == _job(chance=0.1).key("v1")
    assert base.key("v1") != _job(chance=0.5).key("v1")                           # an option
    assert base.key("v1") != base.key("v2")                                       # the drawing code
    renamed = figures.FigureJob(**{**base.__dict__, "frames": {"paths": base.frames["paths"].rename(
        columns={"loss": "acc"})}})
    assert base.key("v1") != renamed.key("v1")                                     # same numbers, another column
    changed = figures.FigureJob(**{**base.__dict__, "frames": {"paths": base.frames["paths"].assign(loss=[0.5, 0.8])}})
    assert base.key("v1") != changed.key("v1")


def test_the_code_version_covers_every_file_that_draws(monkeypatch):
    """A change to figures.py, plots.py, stats.py or mechanism_map.py makes every key new."""
    contents = {name: name.encode() for name in ("figures.py", "plots.py", "stats.py", "mechanism_map.py")}

    class FakePath:
        def __init__(self, *parts):
            self.name = str(parts[-1]).rsplit("/", 1)[-1] if parts else ""

        def resolve(self):
            return self

        @property
        def parent(self):
            return self

        def __truediv__(self, name):
            return FakePath(name)

        def read_bytes(self):
            return contents[self.name]

    monkeypatch.setattr(figures, "Path", FakePath)
    first = figures.code_version()
    for name in list(contents):
        contents[name] += b"# changed"
        assert figures.code_version() != first, name
        contents[name] = name.encode()
    assert figures.code_version() == first


def test_report_workers_are_at_most_the_knob_the_cpus_and_one_per_three_figures(monkeypatch):
    monkeypatch.setenv("MMC_REPORT_WORKERS", "4")
    monkeypatch.setattr(figures, "usable_cpus", lambda: 2)
    assert figures.report_workers(30) == 2                                  # the CPUs
    monkeypatch.setattr(figures, "usable_cpus", lambda: 16)
    assert figures.report_workers(30) == 4                                  # the knob
    assert figures.report_workers(7) == 2                                   # 7 figures: 2 processes
    assert figures.report_workers(2) == 1


# ---------------------------------------------------------------------------------------------
# Reuse between reports
# ---------------------------------------------------------------------------------------------

def test_unchanged_figures_are_reused_changed_ones_redrawn_and_dropped_ones_removed(tmp_path, monkeypatch):
    layout = SweepLayout(Storage(str(tmp_path / "store")), "s")
    drawn: list[list[str]] = []

    def fake_draw_all(jobs, processes=None):
        drawn.append([j.name for j in jobs])
        return [f"png of {j.name} {j.options}".encode() for j in jobs]
    monkeypatch.setattr(figures, "draw_all", fake_draw_all)

    def job(name, chance):
        return figures.FigureJob(name, figures.PATHS_SECTION, "h", "t", "c", "path",
                                 {"paths": pd.DataFrame({"a": [1.0]})}, {"chance": chance})

    first = render(layout, [job("a.png", 0.1), job("b.png", 0.1)])
    assert drawn == [["a.png", "b.png"]] and [f.reused for f in first] == [False, False]
    second = render(layout, [job("a.png", 0.1), job("b.png", 0.5)])
    assert drawn[1] == ["b.png"] and [f.reused for f in second] == [True, False]
    assert second[0].png == first[0].png
    third = render(layout, [job("a.png", 0.1)])
    assert drawn[2] == [] and [f.reused for f in third] == [True]
    assert not layout.storage.exists(layout.report_file("b.png"))            # no longer in the report: removed
    manifest = json.loads(layout.storage.read_bytes(layout.report_file(figures.MANIFEST)))
    assert set(manifest["figures"]) == {"a.png"}
    layout.storage.write_bytes(layout.report_file("a.png"), b"damaged")      # not the PNG recorded: drawn again
    fourth = render(layout, [job("a.png", 0.1)])
    assert drawn[3] == ["a.png"] and fourth[0].png == first[0].png and not fourth[0].reused


# ---------------------------------------------------------------------------------------------
# Mechanism maps
# ---------------------------------------------------------------------------------------------

def _map(metric: str) -> MechanismMap:
    models = pd.DataFrame({"cue_proportion": [0.8, 0.0], "seed": [0, 1], "method": ["cbft", None],
                           "reliance_randimg": [0.6, 0.0], "cluster": [1, 2]})
    return MechanismMap("cue", "linear", metric, "chord", models, np.array([[0.0, 1.0], [1.0, 0.0]]),
                        Threshold(0.3, "cue~cue:resubset", 3), linkage=np.array([[0.0, 1.0, 1.0, 2.0]]),
                        chance=0.1, cut=0.25)


def test_a_map_figure_carries_its_unit_chance_and_cut():
    loss, acc = figures.map_jobs([_map("loss"), _map("acc")])
    assert (loss.options["unit"], acc.options["unit"]) == ("loss barrier", "accuracy drop")
    assert loss.options["chance"] == 0.1 and loss.options["cut"] == 0.25 and loss.options["threshold"] == 0.3
    assert list(loss.frames["models"]["label"]) == ["p=0.8 s0 cbft", "p=0 s1"]
    assert loss.section == figures.MAP_SECTION and loss.name == "map_cue_linear.png"


def test_a_map_without_a_tree_still_gets_its_figure_job():
    m = _map("loss")
    m.linkage = None
    (job,) = figures.map_jobs([m])
    assert job.frames["linkage"].empty and list(job.frames["linkage"].columns) == ["a", "b", "height", "size"]


# ---------------------------------------------------------------------------------------------
# Jobs: headings, titles, captions and the options every figure gets
# ---------------------------------------------------------------------------------------------

def test_every_figure_gets_the_eval_set_registry_order_and_plain_titles_without_swept_settings(jobs):
    """Orders come from `tasks/` (the worker never imports it): each job's `eval_sets` is EVAL_SETS. With
    nothing swept there is no facet label, so no title ends in an empty "()"."""
    from tasks.settings.data import EVAL_SETS

    for job in jobs:
        assert job.kind == "training" or list(job.options["eval_sets"]) == list(EVAL_SETS), job.name
        assert not job.title.endswith("()") and "( " not in job.title, job.title
    titles = {j.kind: j.title for j in jobs}
    assert titles["barriers"] == "Barrier distributions" and titles["table1"] == "Fine-tuning comparison"
    assert titles["training"] == "Training curves"


def test_a_path_figure_is_headed_by_its_pair_type_and_its_caption_names_a_then_b(results):
    """The page groups path figures under one heading per pair type (`heading`), facets included; the
    caption says which model is α = 0 (A, the first of `cue~nocue`) and which α = 1."""
    jobs = figures.figure_jobs(_paths_at_two_proportions(results, "cue~nocue"))
    assert [j.heading for j in jobs] == ["cue~nocue", "cue~nocue"]
    assert all(j.caption.startswith("α = 0 is A, the cue model; α = 1 is B, the no-cue model;") for j in jobs)


def test_table_1s_chance_comes_from_the_evaluations_when_no_path_was_evaluated(results):
    """Chance is 1 / classes of the datasets of the paths and the evaluations: a sweep whose paths are not
    evaluated yet still draws Table 1's dotted chance line at 10 % (digits)."""
    only = {**results, vocab.PATHS: results[vocab.PATHS].iloc[:0], vocab.BARRIERS: results[vocab.BARRIERS].iloc[:0]}
    jobs = {j.kind: j for j in figures.figure_jobs(only)}
    assert list(jobs) == ["table1", "training"]
    assert jobs["table1"].options["chance"] == pytest.approx(0.1) and jobs["training"].options["chance"] == pytest.approx(0.1)


def test_a_figures_key_changes_with_its_kind_and_frame_names_but_not_with_row_labels():
    """The key hashes everything the PNG depends on: the kind of figure and which frame is which; the
    frames' index (row labels) is not drawn, so relabelled rows keep the key."""
    base = _job(chance=0.1)
    other_kind = figures.FigureJob(**{**base.__dict__, "kind": "barriers"})
    assert base.key("v1") != other_kind.key("v1")
    renamed = figures.FigureJob(**{**base.__dict__, "frames": {"barriers": base.frames["paths"]}})
    assert base.key("v1") != renamed.key("v1")
    relabelled = figures.FigureJob(**{**base.__dict__, "frames": {"paths": base.frames["paths"].set_axis([7, 9])}})
    assert base.key("v1") == relabelled.key("v1")


def test_a_map_figures_caption_title_and_heading_name_its_metric_definition_path_set_and_models():
    """MAP_CAPTION filled in its own order (metric, definition, path, eval set); the title counts the
    models (k = 2 here); the heading is the map's context (empty without one, the model where set)."""
    m = _map("loss")
    (job,) = figures.map_jobs([m])
    assert "the loss barrier (chord) of the linear path between them on cue" in job.caption
    assert job.title == "Mechanism map: cue, linear (2 models)"
    assert job.options["title"] == "Mechanism map · cue, linear · 2 models"
    assert job.heading == ""
    m.context = {"model": "wide_cnn"}
    (job,) = figures.map_jobs([m])
    assert job.heading == "wide_cnn" and job.name == "map_cue_linear_model-wide-cnn.png"


def test_only_png_figures_an_earlier_manifest_named_are_removed_and_a_damaged_manifest_is_ignored(tmp_path,
                                                                                                  monkeypatch):
    """Removal is for figures (`.png`) of the earlier report only: a manifest naming another file (hand
    edited, or damaged) must not delete it; a manifest whose `figures` is not a mapping counts as none."""
    layout = SweepLayout(Storage(str(tmp_path / "store")), "s")
    monkeypatch.setattr(figures, "draw_all", lambda jobs, processes=None: [b"png" for _ in jobs])
    layout.storage.write_bytes(layout.report_file("summary.parquet"), b"table")
    layout.storage.write_bytes(layout.report_file(figures.MANIFEST), json.dumps(
        {"figures": {"summary.parquet": {"file": "summary.parquet", "key": "k", "sha256": "s"}}}).encode())
    job = figures.FigureJob("a.png", figures.PATHS_SECTION, "h", "t", "c", "path", {}, {})
    assert [f.name for f in render(layout, [job])] == ["a.png"]
    assert layout.storage.exists(layout.report_file("summary.parquet"))
    layout.storage.write_bytes(layout.report_file(figures.MANIFEST), json.dumps({"figures": ["a.png"]}).encode())
    (again,) = render(layout, [job])
    assert not again.reused
    for name in ("../evil.png", "sub/dir.png", ".png"):    # no file name of report/: left alone, the report written
        layout.storage.write_bytes(layout.report_file(figures.MANIFEST), json.dumps(
            {"figures": {name: {"file": name, "key": "k", "sha256": "s"}}}).encode())
        assert [f.name for f in render(layout, [job])] == ["a.png"]


def test_a_stale_figure_that_cannot_be_deleted_does_not_keep_the_others(tmp_path, monkeypatch):
    """`remove_stale`: an earlier figure whose deletion fails is left, and the ones after it are still removed."""
    layout = SweepLayout(Storage(str(tmp_path / "store")), "s")
    paths = [layout.report_file(n) for n in ("a.png", "b.png")]
    for path in paths:
        layout.storage.write_bytes(path, b"png")
    delete = layout.storage.delete

    def refuse_a(path):
        if path.endswith("a.png"):
            raise PermissionError(13, "Permission denied", path)
        delete(path)
    monkeypatch.setattr(layout.storage, "delete", refuse_a)
    figures.remove_stale(layout, paths)
    assert [layout.storage.exists(p) for p in paths] == [True, False]


def test_a_figure_that_failed_to_draw_is_left_out_and_the_ones_after_it_are_kept(tmp_path, monkeypatch):
    """One bad figure must not cost the report: render skips it (None from draw_all) and goes on."""
    layout = SweepLayout(Storage(str(tmp_path / "store")), "s")
    monkeypatch.setattr(figures, "draw_all", lambda jobs, processes=None: [None if j.name == "a.png" else b"png"
                                                                            for j in jobs])
    jobs = [figures.FigureJob(n, figures.PATHS_SECTION, "h", "t", "c", "path", {}, {}) for n in ("a.png", "b.png")]
    assert [f.name for f in render(layout, jobs)] == ["b.png"]
    manifest = json.loads(layout.storage.read_bytes(layout.report_file(figures.MANIFEST)))
    assert set(manifest["figures"]) == {"b.png"}


def test_a_figure_whose_file_or_manifest_is_gone_or_unreadable_is_drawn_again(tmp_path, monkeypatch):
    """Reuse needs the manifest (JSON) and the PNG it names: a deleted PNG or a manifest that is not JSON
    means drawing again, not an error."""
    layout = SweepLayout(Storage(str(tmp_path / "store")), "s")
    drawn = []
    monkeypatch.setattr(figures, "draw_all", lambda jobs, processes=None: drawn.extend(j.name for j in jobs)
                        or [b"png" for _ in jobs])
    job = figures.FigureJob("a.png", figures.PATHS_SECTION, "h", "t", "c", "path", {}, {})
    render(layout, [job])
    layout.storage.delete(layout.report_file("a.png"))
    (again,) = render(layout, [job])
    layout.storage.write_bytes(layout.report_file(figures.MANIFEST), b"{not json")
    (third,) = render(layout, [job])
    assert drawn == ["a.png"] * 3 and not again.reused and not third.reused


def test_a_worker_answers_each_job_line_with_its_png_or_its_error(monkeypatch):
    """The wire format: one JSON line per job in, one out, {"png": base64} equal to drawing it here, or
    {"error": ...} for a line that is not a job; the worker goes on after an error."""
    import base64
    import io
    import sys

    monkeypatch.setattr(sys, "stdout", sys.stdout)            # serve() sends library prints to stderr
    monkeypatch.setattr(figures, "draw", lambda kind, frames, options: f"{kind}:{sorted(frames)}:{options}".encode())
    job = figures.FigureJob("a.png", figures.PATHS_SECTION, "h", "t", "c", "path",
                            {"paths": pd.DataFrame({"alpha": [0.0, 1.0]})}, {"chance": 0.1})
    out = io.StringIO()
    figures.serve(io.StringIO(figures.encode(job) + "\nnot json\n" + figures.encode(job) + "\n"), out)
    replies = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [sorted(r) for r in replies] == [["png"], ["error"], ["png"]]
    assert base64.b64decode(replies[0]["png"]) == b"path:['paths']:{'chance': 0.1}"
    kind, frames, options = figures.decode(figures.encode(job))
    assert (kind, options) == ("path", {"chance": 0.1})
    pd.testing.assert_frame_equal(frames["paths"], job.frames["paths"])


def test_a_pair_type_with_two_models_gets_a_figure_per_model(results):
    """One path figure per pair type and model (where the sweep has several), named and titled by the model."""
    paths = results[vocab.PATHS]
    one = paths[paths["pair_type"] == "cue~cue"]
    other = one.assign(model="vgg13", task_id=one["task_id"] + "-vgg")
    jobs = figures.figure_jobs({**results, vocab.PATHS: pd.concat([one, other], ignore_index=True),
                                vocab.BARRIERS: results[vocab.BARRIERS].iloc[:0],
                                vocab.EVALUATIONS: results[vocab.EVALUATIONS].iloc[:0],
                                vocab.TRAIN_CURVES: results[vocab.TRAIN_CURVES].iloc[:0]})
    assert [j.name for j in jobs] == ["paths_cue-cue_model-small-cnn.png", "paths_cue-cue_model-vgg13.png"]
    assert [j.options["subtitle"] for j in jobs] == ["model = small_cnn", "model = vgg13"]


def test_a_path_figure_of_a_swept_value_names_that_value_in_its_title(results):
    paths = results[vocab.PATHS]
    one = paths[paths["pair_type"] == "pretrained~ft:cbft"]
    swept = pd.concat([one.assign(**{"finetune.lam": lam}, task_id=one["task_id"] + f"-{lam}") for lam in (1.0, 3.0)],
                      ignore_index=True)
    jobs = figures.figure_jobs({**results, vocab.PATHS: swept, vocab.BARRIERS: results[vocab.BARRIERS].iloc[:0],
                                vocab.EVALUATIONS: results[vocab.EVALUATIONS].iloc[:0],
                                vocab.TRAIN_CURVES: results[vocab.TRAIN_CURVES].iloc[:0]}, ("finetune.lam",))
    assert [j.options["subtitle"] for j in jobs] == ["finetune.lam = 1", "finetune.lam = 3"]
    assert [j.title.endswith(f"(finetune.lam = {lam})") for j, lam in zip(jobs, (1, 3))] == [True, True]


def test_evaluations_without_a_pretrained_or_fine_tuned_model_get_no_table_1_figure(results):
    """Table 1 is drawn from pretrained and fine-tuned models' evaluations only: none, no figure (not one that
    cannot be drawn and warns)."""
    ev = results[vocab.EVALUATIONS]
    only = ev.assign(kind=vocab.MIDPOINT)
    jobs = figures.figure_jobs({**results, vocab.EVALUATIONS: only, vocab.PATHS: results[vocab.PATHS].iloc[:0],
                                vocab.BARRIERS: results[vocab.BARRIERS].iloc[:0]})
    assert [j.kind for j in jobs if j.section == figures.TABLE1_SECTION] == ["training"]   # the curves are there


def test_an_earlier_figure_that_fails_to_draw_now_is_removed_with_its_file(tmp_path, monkeypatch):
    """A figure of the earlier report that could not be drawn this time leaves no stale PNG of the earlier
    results behind (the manifest no longer names it, so no later report would remove it)."""
    layout = SweepLayout(Storage(str(tmp_path / "store")), "s")
    jobs = [figures.FigureJob(n, figures.PATHS_SECTION, "h", "t", "c", "path", {}, {"v": 1}) for n in ("a.png", "b.png")]
    monkeypatch.setattr(figures, "draw_all", lambda jobs, processes=None: [b"png" for _ in jobs])
    render(layout, jobs)
    changed = [figures.FigureJob(j.name, j.section, j.heading, j.title, j.caption, j.kind, {}, {"v": 2}) for j in jobs]
    monkeypatch.setattr(figures, "draw_all", lambda jobs, processes=None: [None if j.name == "a.png" else b"png2"
                                                                            for j in jobs])
    assert [f.name for f in render(layout, changed)] == ["b.png"]
    assert not layout.storage.exists(layout.report_file("a.png"))


def test_the_training_curves_follow_table_1s_rows_with_head_only_epochs_and_the_unfinished_left_out(results):
    """One training figure under Table 1: per row of Table 1 (pretrained without, with the cue, then each
    method), cue proportion and epoch, the models' mean, lowest and highest training loss and accuracy;
    LLRT's epochs are head-only; a task whose latest row is not finished and a midpoint are left out."""
    from orchestrator.report import training

    curves = pd.DataFrame([
        *[{"task_id": f"p{i}", "kind": vocab.PRETRAIN, "cue_proportion": 0.0, "epoch": e, "split": "train",
           "loss": 2.0 - e + i, "acc": 0.1 * (e + 1)} for i in range(2) for e in range(2)],
        {"task_id": "c0", "kind": vocab.PRETRAIN, "cue_proportion": 0.8, "epoch": 0, "split": "train", "loss": 1.0, "acc": 0.5},
        *[{"task_id": "l0", "kind": vocab.FINETUNE, "method": "llrt", "cue_proportion": 0.8, "epoch": e, "split": "llrt",
           "loss": 0.5, "acc": 0.9} for e in range(2)],
        {"task_id": "m0", "kind": vocab.MIDPOINT, "cue_proportion": 0.8, "epoch": 0, "split": "train", "loss": 9.0, "acc": 0.0},
        {"task_id": "f0", "kind": vocab.PRETRAIN, "cue_proportion": 0.8, "epoch": 0, "split": "train", "loss": 9.0, "acc": 0.0},
    ])
    tasks = pd.DataFrame({"task_id": ["p0", "p1", "c0", "l0", "m0", "f0"],
                          "status": ["finished"] * 5 + ["failed"]})
    long = training.curves_long(curves, tasks)
    assert long[["row", "cue_proportion", "epoch", "n", "head_only"]].values.tolist() == [
        ["pretrained (no cue)", 0.0, 0, 2, False], ["pretrained (no cue)", 0.0, 1, 2, False],
        ["pretrained (cue)", 0.8, 0, 1, False], ["llrt", 0.8, 0, 1, True], ["llrt", 0.8, 1, 1, True]]
    first = long.iloc[0]
    assert (first["loss_mean"], first["loss_min"], first["loss_max"]) == (2.5, 2.0, 3.0)
    assert first["acc_mean"] == pytest.approx(0.1)
    job = next(j for j in figures.figure_jobs({**results, vocab.TRAIN_CURVES: curves, vocab.TASKS: tasks})
               if j.kind == "training")
    assert job.section == figures.TABLE1_SECTION and job.name == "training.png"
    assert job.frames["long"].equals(long) and job.options["chance"] == pytest.approx(0.1)
    assert figures.draw(job.kind, job.frames, job.options).startswith(b"\x89PNG")
    assert training.curves_long(curves.iloc[:0], tasks).empty and training.curves_long(curves[curves.kind == vocab.MIDPOINT]).empty


def test_a_figure_a_worker_could_not_draw_is_drawn_again_here(monkeypatch):
    """A worker that answers a job with an error (here: it does not know the kind this process draws) leaves
    that figure to this process, which draws it: every job gets its PNG, none is lost to the worker."""
    import time

    def slow(frames, options):          # this process only: the worker processes import the real DRAW
        time.sleep(0.3)                 # long enough for the worker's thread to take a job from the queue
        return options["n"]

    monkeypatch.setitem(figures.DRAW, "here-only", slow)
    monkeypatch.setattr(figures.plots, "figure_png", lambda fig: f"png {fig}".encode())
    jobs = [figures.FigureJob(f"f{i}.png", figures.PATHS_SECTION, "h", "t", "c", "here-only", {}, {"n": i})
            for i in range(4)]
    assert figures.draw_all(jobs, processes=2) == [f"png {i}".encode() for i in range(4)]
