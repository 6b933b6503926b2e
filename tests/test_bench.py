"""The benchmark scripts still run (smallest sizes; figures are not checked, only their shape)."""
from __future__ import annotations

import json
import os

import pytest
import torch

from bench import bn_samples, common, layout_ab, memory, orchestration, paper_sweep, path_eval, train_throughput
from orchestrator import vocab


def read(out, name: str) -> dict:
    return json.loads((out / f"{name}.json").read_text())


def test_alternate_flips_order_and_keeps_every_result():
    calls = []
    times, results = common.alternate({"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2},
                                      repeats=3, log=lambda _: None)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert results == {"a": [1, 1, 1], "b": [2, 2, 2]} and all(len(v) == 3 for v in times.values())


def test_path_eval_quick(tmp_path):
    path_eval.main(["--quick", "--out", str(tmp_path), "--digits-epochs", "0", "--train", "64", "--test", "16",
                    "--vgg-width", "4", "--alphas", "2", "--ref-alphas", "2", "--bn-samples", "32", "--repeats", "2",
                    "--precisions", "fp32,bf16", "--pipelines", "torchvision,lean"])
    results = read(tmp_path, "path_eval")["results"]
    assert [r["model"] for r in results] == ["small_cnn", "vgg13"]
    for r in results:
        assert set(r["speedup_per_alpha"]) == {f"fast-{p} vs ref-{q}" for p in ("fp32", "bf16")
                                               for q in ("torchvision", "lean")}
        assert all(v > 0 for v in r["speedup_per_alpha"].values()) and r["forward_gflop_per_image"] > 0
        assert set(r["curve_max_abs_diff"]) == {"fast-fp32 vs ref-torchvision", "fast-bf16 vs ref-torchvision",
                                                "fast-bf16 vs fast-fp32"}
        for per_set in r["curve_max_abs_diff"].values():
            assert set(per_set) == {"nocue", "cue", "randcue", "randimg"}
        assert set(r["rows"]) == {"fast-fp32", "fast-bf16", "ref-torchvision", "ref-lean"}
        assert all(len(rows) == 2 * 4 for rows in r["rows"].values())


def test_train_throughput_quick(tmp_path):
    train_throughput.main(["--quick", "--out", str(tmp_path), "--train", "64", "--batch", "32", "--vgg-width", "4"])
    results = read(tmp_path, "train_throughput")["results"]
    assert all(r["fast_images_per_s"] > 0 and r["reference_images_per_s"] > 0 for r in results)


def test_bn_samples_quick(tmp_path):
    bn_samples.main(["--quick", "--out", str(tmp_path), "--digits-n", "100", "--vgg-n", "32", "--train", "64",
                     "--test", "16", "--vgg-width", "4", "--digits-epochs", "0", "--vgg-epochs", "0"])
    for r in read(tmp_path, "bn_samples")["results"]:
        full = r["table"][-1]
        assert full["n"] == r["n_train"] and all(v == 0 for v in full["abs_dev"].values())


def test_memory_one_task_kind(tmp_path):
    memory.main(["--spec", "smoke", "--kinds", "pretrain", "--out", str(tmp_path)])
    rows = read(tmp_path, "memory")["per_kind"]["tasks"]
    assert [r["kind"] for r in rows] == ["pretrain"] and rows[0]["maxrss_mib"] > 50
    assert memory.tree_rss_kib(os.getpid()) > 0


@pytest.mark.timeout(600)
def test_orchestration_quick(tmp_path):
    orchestration.main(["--quick", "--out", str(tmp_path), "--tasks", "2", "--chain", "2", "--plan-tasks", "200",
                        "--noop-sweep", "none"])
    payload = read(tmp_path, "orchestration")
    assert payload["planning"]["tasks"] >= 200
    assert payload["noop_graph"]["done"] == 4 and payload["noop_graph"]["overhead"]["n"] == 4


@pytest.mark.parametrize("pipeline", ["torchvision", "lean"])
@pytest.mark.parametrize("dataset", ["digits", "synthetic_cifar"])
def test_reference_pipelines_build_the_images_tasks_data_builds(pipeline, dataset):
    from bench.reference import reference_sets, reference_train_set
    data = common.digits_data(0.5) if dataset == "digits" else common.synthetic_cifar(16, 16, 0.5, seed=0)
    tolerance = 1e-6 if dataset == "digits" else 1e-2            # synthetic CIFAR is stored as float16
    train_set, sets = reference_sets(data, pipeline)
    cued_set = reference_train_set(data, pipeline)
    assert 0 < data.cued_train[:16].sum() < 16
    for i in range(16):
        assert (cued_set[i][0] - data.cue.train.x[i].float()).abs().max() < tolerance   # cue where cued
    for i in range(8):
        assert (train_set[i][0] - data.cue.train_clean.x[i].float()).abs().max() < tolerance
        for mode in ("nocue", "cue"):                           # the deterministic sets
            x, y = sets[mode][i]
            assert y == int(data.y_test[i])
            assert (x - data.cue.eval_sets[mode].x[i].float()).abs().max() < tolerance
        clean = sets["nocue"][i][0]
        assert not bool((sets["randimg"][i][0] - clean).abs().max() < 1e-6)   # never the image itself
        randcue = sets["randcue"][i][0]
        outside = torch.ones_like(clean, dtype=torch.bool)
        for r, c in data.corners:                               # only a box region may differ
            outside[:, r:r + 3, c:c + 3] = False
        assert (randcue - clean)[outside].abs().max() < 1e-6


def test_layout_ab_quick(tmp_path):
    layout_ab.main(["--quick", "--out", str(tmp_path), "--models", "small_cnn"])
    (result,) = read(tmp_path, "layout_ab")["results"]
    assert set(result["eval_speedup"]) == {"nchw_fp32", "cl_fp32", "cl_folded_fp32", "cl_folded_bf16"}
    assert result["eval_speedup"]["nchw_fp32"] == 1.0 and all(v > 0 for v in result["train_images_per_s"].values())


def test_table_spread_counts_the_values_two_runs_disagree_on(tmp_path):
    from bench import table_spread
    from orchestrator import vocab
    from orchestrator.storage.layout import Storage, SweepLayout
    from tests.support.report_data import synthetic_sweep, write_sweep

    a, b = (SweepLayout(Storage(str(tmp_path / name)), "s") for name in ("a", "b"))
    data = synthetic_sweep(seeds=(0, 1), pair_types=("cue~nocue",))
    write_sweep(a, data)
    task = next(iter(data[vocab.BARRIERS]))
    data[vocab.BARRIERS][task][0]["value"] += 0.5           # one barrier moves beyond the tolerance
    data[vocab.BARRIERS][task][1]["value"] += 1e-9          # another by float rounding
    write_sweep(b, data)
    out = table_spread.spread(a, b).set_index(["table", "column"])
    row = out.loc[(vocab.BARRIERS, "value")]
    assert row["differ"] == 2 and row["beyond max(0.005, 2%)"] == 1 and row["max |diff|"] == pytest.approx(0.5)
    assert out.loc[(vocab.PATHS, "loss"), "differ"] == 0


def test_a_fabricated_sweep_reads_as_a_finished_one(tmp_path):
    """`bench.fabricate` (one seed of the default graph) leaves a sweep every task of which `status` counts
    as finished, with the synthetic runner's rows per task; `bench.read_side` times its reads."""
    from bench import fabricate, read_side, scale
    from orchestrator import status, vocab
    from orchestrator.storage.layout import open_sweep_dir

    root = fabricate.fabricate(str(tmp_path), 1, log=lambda _: None, workers=1)
    snapshot = status.status_snapshot(open_sweep_dir(root))
    assert snapshot["total"][vocab.FINISHED] == snapshot["total"]["planned"] == scale.tasks_per_seed()
    assert not snapshot["damaged"]
    shape = fabricate.shape(root)
    assert shape["paths"]["rows per task"][vocab.PATH_EVAL][:2] == [44, 44]          # 11 alphas x 4 eval sets
    assert all(files == ["part"] for files in shape["files"].values())               # compacted: one part each
    measured = read_side.measure(root, ["reads", "status"])
    assert set(measured) == ({f"read {t}" for t in vocab.TABLES} | {f"read {t}, the report's columns" for t in vocab.TABLES}
                             | {"status"})
    # `--parts 3`: the same tables from three parts each, as a run's bundles leave them
    import pandas as pd

    from orchestrator.results import tables
    copy = open_sweep_dir(fabricate.repart(root, str(tmp_path / "parts3" / "scale"), 3, log=lambda _: None))
    assert all(files == ["part"] * 3 for files in fabricate.shape(copy.root)["files"].values())
    for table in vocab.TABLES:
        pd.testing.assert_frame_equal(tables.read_table(copy, table), tables.read_table(open_sweep_dir(root), table))


def test_scale_reads_the_drivers_memory_by_kind_and_its_python_owners():
    import tracemalloc

    from bench import scale

    assert scale.RssSampler.now_mib() > 0
    assert set(scale.RssSampler.parts_mib()) == {"RssAnon", "RssFile", "RssShmem"}
    arenas = scale.pymalloc_stats()
    assert arenas["arenas allocated current"] > 0 and arenas["bytes in allocated blocks"] > 0
    tracemalloc.start(1)
    try:
        held = [bytearray(1 << 20) for _ in range(4)]   # 4 MiB from one line of this file
        owners = scale.traced_owners()
    finally:
        tracemalloc.stop()
    assert len(held) == 4 and owners["tracemalloc_mib"] >= 4
    top = owners["tracemalloc_top"][0]
    assert top["where"].startswith(__file__) and top["mib"] >= 4


def test_paper_sweep_quick_projects_every_task_of_the_papers_sweep(tmp_path):
    """`bench.paper_sweep --quick`: every role of `sweeps/cifar10_vgg13.yaml` measured through `work.run_here`,
    each of its 534 tasks projected as its role's fixed cost plus its planned epochs of each phase, the
    wall-time bounds ordered, and two path evaluations run in processes of their own, alone and together."""
    import tasks.train
    from orchestrator.run import work

    out = paper_sweep.main(["--quick", "--packing", "2", "--out", str(tmp_path)])
    assert work.fit is tasks.train.fit                 # the epoch callbacks were timed only while the tasks ran
    assert read(tmp_path, "paper_sweep")["per_role"] == json.loads(json.dumps(out["per_role"]))
    roles, per_role = out["roles"], out["per_role"]
    assert set(roles) == set(per_role) and {r.split(":")[0] for r in roles} == set(vocab.TASK_KINDS)
    assert {r for r in roles if r.startswith("finetune:")} == {f"finetune:{m}" for m in
                                                              ("naive", "llrt", "lpft", "cbft", "naive_cued")}
    assert sum(r["tasks"] for r in per_role.values()) == 534 and not out["paper_sizes"]
    pretrain, cbft = roles["pretrain"], roles["finetune:cbft"]
    assert len(pretrain["epochs_s"]) == 2 and len(cbft["epochs_s"]) == 3     # cbft: its warm-up epoch, then two
    first, steady = pretrain["per_epoch_s"]["epoch"]["first_s"], pretrain["per_epoch_s"]["epoch"]["steady_s"]
    assert (first, steady) == (pretrain["epochs_s"][0], pretrain["epochs_s"][1])
    assert per_role["pretrain"]["projected_s_per_task"] == pytest.approx(
        pretrain["fixed_s"] + first + 99 * steady)                           # the paper's 100 epochs
    warm, rest = cbft["per_epoch_s"]["warm-up epoch"], cbft["per_epoch_s"]["epoch"]
    assert warm["first_s"] == cbft["epochs_s"][0] and rest["steady_s"] == cbft["epochs_s"][2]
    assert per_role["finetune:cbft"]["projected_s_per_task"] == pytest.approx(
        cbft["fixed_s"] + warm["first_s"] + rest["first_s"] + 18 * rest["steady_s"])   # 1 warm-up epoch of 20
    assert roles["path_eval:linear"]["fixed_s"] == roles["path_eval:linear"]["measured_s"]
    packing = out["packing"]              # two path evaluations, a process each: alone, then started together
    assert len(set(packing["tasks"])) == 2 and all(t.startswith("path_eval-") for t in packing["tasks"])
    assert packing["starts_spread_s"] < min(packing["together_s"]) and packing["together_span_s"] >= max(packing["together_s"])
    assert packing["speedup"] == pytest.approx(sum(packing["alone_s"]) / packing["together_span_s"])
    sweep = out["sweep"]
    assert 0 < sweep["critical_path_s"] <= sweep["serial_s"]
    for bound in sweep["wall_s"].values():
        assert sweep["critical_path_s"] <= bound["at_least"] <= bound["at_most"]
