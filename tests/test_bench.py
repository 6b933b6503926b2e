"""The benchmark scripts still run (smallest sizes; figures are not checked, only their shape)."""
from __future__ import annotations

import json
import os

import pytest

from bench import bn_samples, common, memory, orchestration, path_eval, train_throughput


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
                    "--vgg-width", "4", "--alphas", "2", "--ref-alphas", "2", "--bn-samples", "32", "--repeats", "2"])
    results = read(tmp_path, "path_eval")["results"]
    assert [r["model"] for r in results] == ["small_cnn", "vgg13"]
    for r in results:
        assert r["speedup_per_alpha"] > 0 and r["forward_gflop_per_image"] > 0
        assert set(r["curve_max_abs_diff"]) == {"nocue", "cue", "randcue", "randimg"}
        assert len(r["fast_rows"]) == len(r["reference_rows"]) == 2 * 4


def test_reference_dataset_paints_the_cue_and_never_picks_the_same_image():
    data = common.synthetic_cifar(8, 8, seed=0)
    from bench.reference import CueDataset
    kw = dict(num_classes=10, corners=data.corners, colours=data.colours, raw_uint8=True)
    for i in range(8):      # per-sample "cue" image == the batched tensor version (float16 storage)
        x, y = CueDataset(data.raw_test, data.y_test, "cue", **kw)[i]
        assert y == int(data.y_test[i])
        assert (x - data.cue.eval_sets["cue"].x[i].float()).abs().max() < 1e-2
    randimg = CueDataset(data.raw_test, data.y_test, "randimg", **kw)
    for i in range(8):
        clean, _ = CueDataset(data.raw_test, data.y_test, "nocue", **kw)[i]
        assert not bool((randimg[i][0] - clean).abs().max() < 1e-6)


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


@pytest.mark.timeout(120)
def test_orchestration_quick(tmp_path):
    orchestration.main(["--quick", "--out", str(tmp_path), "--tasks", "2", "--chain", "2", "--plan-tasks", "200"])
    payload = read(tmp_path, "orchestration")
    assert payload["planning"]["tasks"] >= 200
    assert payload["noop_graph"]["done"] == 4 and payload["noop_graph"]["overhead"]["n"] == 4


def test_reference_dataset_matches_tasks_data_on_digits():
    data = common.digits_data(0.0)
    from bench.reference import CueDataset
    kw = dict(num_classes=10, corners=data.corners, colours=data.colours, raw_uint8=False)
    for mode in ("nocue", "cue"):
        dataset = CueDataset(data.raw_test, data.y_test, mode, **kw)
        for i in range(5):
            assert (dataset[i][0] - data.cue.eval_sets[mode].x[i]).abs().max() < 1e-6
