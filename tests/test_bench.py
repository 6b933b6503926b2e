"""The benchmark scripts still run (smallest sizes; figures are not checked, only their shape), and the small
pieces they are built of compute what they say (checked value by value on tiny inputs)."""
from __future__ import annotations

import json
import os
from pathlib import Path

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


# ----- small pieces of the benchmarks, checked one by one ----------------------------------------

def test_summary_reports_the_median_min_and_max_of_the_runs():
    assert common.summary([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "runs": [3.0, 1.0, 2.0]}


def test_write_json_names_the_file_by_its_tag_and_prefers_out_to_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(common.OUT_DIR_ENV_VAR, str(tmp_path / "from-env"))
    path = common.write_json("bench", {"a": 1}, str(tmp_path / "given"), tag="gpu")
    assert path == tmp_path / "given" / "bench-gpu.json" and json.loads(path.read_text()) == {"a": 1}
    assert common.write_json("bench", {}, None) == tmp_path / "from-env" / "bench.json"


def test_asking_for_cuda_where_there_is_none_is_refused_with_a_message(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="CUDA is not available"):
        common.pick_device("cuda")
    assert common.pick_device("auto") == torch.device("cpu")


def test_forward_flops_counts_two_per_multiply_add_and_keeps_the_models_mode():
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    model.eval()
    assert common.forward_flops(model, (2, 4, 4)) == 2 * (2 * 3 * 3) * (3 * 4 * 4) + 2 * (3 * 4 * 4 * 5)
    assert not model.training


def test_synthetic_cifar_random_sets_differ_from_the_cued_one_image_by_image():
    data = common.synthetic_cifar(8, 16, seed=0)
    sets = data.cue.eval_sets
    for i in range(16):            # randimg: another image under the true cue; never the image itself
        assert not torch.equal(sets["randimg"].x[i], sets["cue"].x[i])
    assert not torch.equal(sets["randcue"].x, sets["cue"].x)         # randcue: cues of random classes


def test_train_endpoint_trains_for_a_single_epoch():
    from tasks.data import Split

    data = common.digits_data()
    few = Split(data.cue.train.x[:64], data.cue.train.y[:64])
    untrained = common.train_endpoint("small_cnn", data, few, seed=0, epochs=0, device="cpu")
    trained = common.train_endpoint("small_cnn", data, few, seed=0, epochs=1, device="cpu")
    assert any(not torch.equal(untrained[k], trained[k]) for k in untrained)


def test_paper_sweep_options_accept_their_least_values_and_quick_keeps_a_given_width():
    args = paper_sweep.parse_args(["--epochs", "1", "--packing", "0", "--images", "10", "--test", "1"])
    assert (args.epochs, args.packing, args.images, args.test) == (1, 0, 10, 1)
    with pytest.raises(SystemExit):
        paper_sweep.parse_args(["--epochs", "0"])
    assert paper_sweep.parse_args(["--quick", "--width", "8"]).width == 8
    assert paper_sweep.parse_args(["--quick"]).width == 4


def test_write_cifar10_writes_exactly_the_images_asked_for(tmp_path):
    import pickle

    paper_sweep.write_cifar10(tmp_path, 7, 3)
    folder = tmp_path / paper_sweep.CIFAR_DIR
    sizes = [len(pickle.loads((folder / f"data_batch_{i}").read_bytes())[b"labels"]) for i in range(1, 6)]
    assert sizes == [2, 2, 1, 1, 1]
    assert len(pickle.loads((folder / "test_batch").read_bytes())[b"labels"]) == 3


def test_epoch_seconds_adds_each_epochs_callback_and_refuses_a_count_that_does_not_match(monkeypatch):
    import pandas as pd

    from orchestrator.results import tables

    curve = pd.DataFrame({"epoch": [0, 0, 1, 1], "duration_s": [1.0, 2.0, 4.0, None]})
    monkeypatch.setattr(tables, "read_fragment", lambda layout, table, task_id: curve)
    assert paper_sweep.epoch_seconds(None, "t", [0.5, 0.25]) == [3.5, 4.25]
    for timed in ([0.5], [0.5, 0.25, 0.125]):
        with pytest.raises(RuntimeError, match="2 epochs in its curve"):
            paper_sweep.epoch_seconds(None, "t", timed)


def test_cbft_warm_up_is_capped_at_its_epochs_and_an_empty_phase_costs_nothing():
    settings = {"finetune.epochs": 2, "finetune.warmup_epochs": 5}
    assert paper_sweep.phases("finetune:cbft", settings) == [("warm-up epoch", 2), ("epoch", 0)]
    model = {"fixed_s": 1.0, "per_epoch_s": {"warm-up epoch": {"first_s": 3.0, "steady_s": 2.0},
                                             "epoch": {"first_s": 30.0, "steady_s": 20.0}}}
    assert paper_sweep.projected_seconds("finetune:cbft", model, settings) == 1.0 + 3.0 + 2.0


def test_cost_model_takes_every_measured_epoch_out_of_the_fixed_cost():
    model = paper_sweep.cost_model("pretrain", 10.0, [2.0, 1.0, 1.5], {"pretrain.epochs": 3})
    assert model == {"fixed_s": 5.5, "per_epoch_s": {"epoch": {"first_s": 2.0, "steady_s": 1.25}}}


def _graph(tasks):
    """A stand-in for a planned graph: {task id: (kind, parents, gpus)}, in topological order."""
    from types import SimpleNamespace

    return SimpleNamespace(tasks={t: SimpleNamespace(kind=kind, parents=parents, resources=SimpleNamespace(gpus=gpus))
                                  for t, (kind, parents, gpus) in tasks.items()})


def test_wall_time_bounds_follow_the_longest_chain_and_the_gpu_shares():
    graph = _graph({"a": ("pretrain", [], 1), "b": ("pretrain", [], 1), "c": ("path_eval", ["a", "b"], 0.25)})
    seconds = {"a": 10.0, "b": 2.0, "c": 8.0}
    out = paper_sweep.bounds(graph, seconds, [1, 4])
    assert out["critical_path_s"] == 18.0 and out["serial_s"] == 20.0 and out["gpu_share_weighted_s"] == 14.0
    assert out["wall_s"]["1"] == {"at_least": 18.0, "at_most": 38.0}
    assert out["wall_s"]["4"] == {"at_least": 18.0, "at_most": 23.0}
    wide = _graph({t: ("path_eval", [], 0.5) for t in "abcd"})
    assert paper_sweep.bounds(wide, dict.fromkeys("abcd", 4.0), [1])["wall_s"]["1"] == {"at_least": 8.0,
                                                                                        "at_most": 20.0}


def test_packing_is_skipped_where_no_path_evaluation_has_all_its_parents_stored():
    graph = _graph({"a": ("pretrain", [], 1), "b": ("pretrain", [], 1), "p": ("path_eval", ["a", "b"], 1)})
    assert paper_sweep.measure_packing([], graph, {"a"}, 1) == {
        "skipped": "0 path evaluations have their parents stored, 1 asked for"}


def test_curve_diffs_keeps_the_largest_difference_per_set_at_the_alphas_both_ran():
    a = [{"alpha": 0.0, "eval_set": "cue", "loss": 1.0, "acc": 0.5},
         {"alpha": 0.5, "eval_set": "cue", "loss": 2.0, "acc": 0.9},
         {"alpha": 1.0, "eval_set": "cue", "loss": 9.0, "acc": 0.0}]
    b = [{"alpha": 0.0, "eval_set": "cue", "loss": 1.5, "acc": 0.2},
         {"alpha": 0.5, "eval_set": "cue", "loss": 2.25, "acc": 0.8}]
    out = path_eval.curve_diffs(a, b)
    assert out.keys() == {"cue"} and out["cue"]["loss"] == pytest.approx(0.5) and out["cue"]["acc"] == pytest.approx(0.3)


def test_path_eval_refuses_an_empty_precision_list():
    with pytest.raises(SystemExit):
        path_eval.parse_args(["--precisions", ""])


def test_path_eval_counts_the_reference_images_of_all_four_sets_and_runs_a_precision_once(tmp_path):
    out = path_eval.main(["--quick", "--out", str(tmp_path), "--models", "small_cnn", "--digits-epochs", "0",
                          "--alphas", "2", "--ref-alphas", "2", "--bn-samples", "32", "--precisions", "fp32,fp32",
                          "--pipelines", "lean"])
    (r,) = out["results"]
    assert r["precisions"] == ["fp32"] and set(r["rows"]) == {"fast-fp32", "ref-lean"}
    assert [len(rows) for rows in r["rows"].values()] == [2 * 4, 2 * 4]     # the baseline ran both alphas
    assert r["forward_images_reference"] == 2 * 4 * (r["n_train"] + r["n_test_per_set"])
    assert r["forward_images_fast"] == 2 * (32 + 4 * r["n_test_per_set"])


@pytest.mark.parametrize("pipeline", ["torchvision", "lean"])
def test_reference_randimg_never_shows_the_image_itself(pipeline):
    import numpy as np

    from bench.reference import reference_sets

    data = common.synthetic_cifar(8, 3, seed=0)
    _, sets = reference_sets(data, pipeline)
    outside = torch.ones(3, 32, 32, dtype=torch.bool)
    for r, c in data.corners:
        outside[:, r:r + 3, c:c + 3] = False
    np.random.seed(0)
    for _ in range(20):                  # 2 other images to draw from: the image itself would come soon
        for i in range(3):
            x = sets["randimg"][i][0]
            assert not torch.equal(x[outside], sets["nocue"][i][0][outside])


def test_reference_box_colours_match_tasks_data_beyond_ten_classes():
    from bench.reference import reference_sets

    data = common.synthetic_cifar(8, 32, seed=0, num_classes=15)
    _, sets = reference_sets(data, "torchvision")
    beyond = [i for i in range(32) if data.y_test[i] >= 10]
    assert beyond
    for i in beyond:
        assert (sets["cue"][i][0] - data.cue.eval_sets["cue"].x[i].float()).abs().max() < 1e-2


def test_reference_bn_update_uses_momentum_and_accuracy_is_per_sample():
    from torch.utils.data import DataLoader, TensorDataset

    from bench.reference import evaluate_loader, reestimate_bn

    model = torch.nn.Sequential(torch.nn.BatchNorm1d(2))
    x = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    reestimate_bn(model, DataLoader(TensorDataset(x, torch.zeros(2)), batch_size=2), torch.device("cpu"))
    assert torch.allclose(model[0].running_mean, 0.1 * x.mean(0)) and not model.training
    eval_set = TensorDataset(torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]), torch.tensor([1, 0, 0]))
    result = evaluate_loader(torch.nn.Identity(), DataLoader(eval_set, batch_size=2), torch.device("cpu"))
    assert result["acc"] == pytest.approx(2 / 3) and result["n"] == 3


# ----- bench.scale's sizes, samples and figures --------------------------------------------------

def test_scale_rounds_a_size_to_the_nearest_whole_seeds(monkeypatch):
    from bench import scale

    monkeypatch.setattr(scale, "tasks_per_seed", lambda: 10)
    assert [scale.seeds_for(n) for n in (1, 14, 16, 26)] == [1, 1, 2, 3]


def test_scale_samples_only_above_the_threshold_and_at_least_one_in_two():
    from bench import scale

    assert scale.sample_of(20_000, 20_000) is None
    assert scale.sample_of(20_001, 20_000).stride == 2 and scale.sample_of(15_000, 0).stride == 2
    assert scale.sample_of(100_000, 20_000).stride == 10


def test_scale_rows_are_not_the_same_when_a_sampled_task_lost_its_rows():
    from bench import scale

    assert scale.same_rows({"t": {"a": 3, "b": 1}, "u": 4}, {"t": {"a": 3, "b": 1}, "u": 4})
    assert not scale.same_rows({"t": {"a": 3, "b": 1}}, {"t": {"a": 3}})


def test_scale_overheads_are_those_of_finished_tasks():
    from types import SimpleNamespace

    import pandas as pd

    from bench import scale

    frame = pd.DataFrame({"status": ["finished", "finished", "failed"],
                          "started_at": pd.to_datetime([0, 0, 0], unit="s", utc=True),
                          "finished_at": pd.to_datetime([2, 3, 100], unit="s", utc=True),
                          "duration_s": [1.0, 1.0, 1.0]})
    median, p95 = scale._overheads(None, SimpleNamespace(read_table=lambda layout, table: frame), vocab)
    assert median == pytest.approx(1.5) and p95 == pytest.approx(1.95)


def test_scale_rss_summary_names_the_highest_sample():
    from bench import scale

    sampler = scale.RssSampler()
    sampler.samples = [(1.0, 100.0, 0.0), (2.0, 300.0, 0.0), (3.0, 200.0, 0.0)]
    out = sampler.summary()
    assert (out["rss_max_sampled_mib"], out["rss_max_sampled_at_s"]) == (300.0, 2.0)


def test_scale_medians_leave_out_a_figure_some_run_lacks():
    from bench import scale

    run = {"files": {"t": 1}, "files_before_compaction": {"t": 2}, "tasks": 5}
    out = scale.medians([{**run, "wall_s": 1.0, "status_s": 4.0}, {**run, "wall_s": 3.0}])
    assert out["wall_s"] == 2.0 and "status_s" not in out and out["tasks"] == 5


def test_scale_fresh_reads_are_the_whole_tables_not_the_reports_columns(monkeypatch):
    from types import SimpleNamespace

    from bench import scale

    measured = {"read paths": {"wall_s": 1.0}, "read paths, the report's columns": {"wall_s": 0.5},
                "status": {"wall_s": 2.0}}
    monkeypatch.setattr(scale.subprocess, "run", lambda *a, **k: SimpleNamespace(stdout="x\n" + json.dumps(measured)))
    assert scale.time_fresh_reads("dir", 10) == {"paths": 1.0}


# ----- bench.fabricate ---------------------------------------------------------------------------

def test_fabricate_in_several_chunks_keeps_every_task_and_their_times_apart(tmp_path, monkeypatch):
    from bench import fabricate
    from orchestrator import status
    from orchestrator.results import tables
    from orchestrator.storage.layout import open_sweep_dir

    monkeypatch.setattr(fabricate, "CHUNK", 10)
    layout = open_sweep_dir(fabricate.fabricate(str(tmp_path), 1, log=lambda _: None, workers=1))
    snapshot = status.status_snapshot(layout)
    assert snapshot["total"][vocab.FINISHED] == snapshot["total"]["planned"]
    started = tables.read_table(layout, vocab.TASKS).sort_values("task_id")["started_at"]
    assert started.is_monotonic_increasing and started.is_unique


def test_fabricate_refuses_zero_parts_and_check_fails_on_a_different_shape(tmp_path, monkeypatch):
    from bench import fabricate

    assert fabricate.main(["--storage", str(tmp_path), "--parts", "0", "--into", str(tmp_path / "copy")]) == 2
    assert not (tmp_path / "copy").exists()
    monkeypatch.setattr(fabricate, "shape", lambda directory: {"tasks": Path(directory).name})
    assert fabricate.main(["--storage", str(tmp_path), "--name", "same", "--check", "same"]) == 0
    assert fabricate.main(["--storage", str(tmp_path), "--name", "fake", "--check", "real"]) == 1
