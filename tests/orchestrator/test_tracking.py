"""MLflow tracking (`orchestrator.run.tracking`): one parent run per invocation, a child run per task with
its parameters, metrics and step series, secrets never logged, safe from several threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from orchestrator.run import tracking
def test_mlflow_parent_children_metrics_and_secrets(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sink = tracking.MlflowSink(uri, "test-sweep")
    parent = sink.start_parent(params={"sweep": "test", "api_token": "xyz"},
                               tags={"spec_hash": "abc", "db_password": "hunter2"})
    artifact = tmp_path / "curve.txt"
    artifact.write_text("hello")
    params = {"train": {"lr": 0.05, "epochs": 3, "secret_key": "s"}, "models": ["a", "b"],
              "long": "x" * 10_000, "aws_credentials": {"id": "k"}}
    child_ok = sink.log_task(parent, "pretrain", "pretrain-123", params=params,
                             metrics={"eval/nocue/acc": 0.9, "my_secret": 1.0},
                             curves=[("train/loss", ep, 1.0 / (ep + 1)) for ep in range(4)],
                             artifacts=[str(artifact)])
    child_bad = sink.log_task(parent, "finetune", "finetune-456", params={"method": "cbft"},
                              status="FAILED", error="Traceback ...\nRuntimeError: boom")
    with ThreadPoolExecutor(4) as pool:  # explicit run ids: safe from several threads
        threaded = list(pool.map(lambda i: sink.log_task(parent, "path_eval", f"path_eval-{i}",
                                                         metrics={"barrier": i}), range(6)))
    sink.finish_parent(parent, "FINISHED", metrics={"tasks_finished": 1}, artifacts=[str(artifact)])

    client = sink.client
    children = client.search_runs([sink.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert {r.info.run_id for r in children} == {child_ok, child_bad, *threaded}
    assert sorted(client.get_run(r).data.metrics["barrier"] for r in threaded) == list(range(6))
    ok, bad, par = (client.get_run(r) for r in (child_ok, child_bad, parent))
    assert ok.info.run_name == "pretrain-123" and ok.info.status == "FINISHED"
    assert bad.info.status == "FAILED" and "boom" in bad.data.tags["error"]
    assert par.info.status == "FINISHED" and par.data.metrics["tasks_finished"] == 1
    assert ok.data.params["train.lr"] == "0.05" and ok.data.params["models"] == '["a", "b"]'
    assert len(ok.data.params["long"]) == tracking.MAX_PARAM_VALUE
    history = client.get_metric_history(child_ok, "train/loss")
    assert sorted((m.step, m.value) for m in history) == [(ep, 1.0 / (ep + 1)) for ep in range(4)]
    assert ok.data.metrics["eval/nocue/acc"] == pytest.approx(0.9)
    everything = [*ok.data.params, *ok.data.metrics, *par.data.params, *par.data.tags]
    assert not [k for k in everything if tracking.is_secret(k)]
    assert "db_password" not in par.data.tags and "api_token" not in par.data.params
    assert [a.path for a in client.list_artifacts(child_ok)] == ["curve.txt"]
    assert [a.path for a in client.list_artifacts(parent)] == ["curve.txt"]
    assert "error.txt" in [a.path for a in client.list_artifacts(child_bad)]
    assert (tmp_path / "mlflow-artifacts").is_dir()  # artifacts stay next to the database
    # a second sink on the same store finds the experiment again
    assert tracking.MlflowSink(uri, "test-sweep").experiment_id == sink.experiment_id
    with pytest.raises(ValueError, match="allowed: FINISHED, FAILED"):
        sink.log_task(parent, "pretrain", "x", status="DONE")


def test_flatten_params_drops_secrets_and_truncates():
    flat = tracking.flatten_params({"a": {"b": {"c": 1}}, "Password": "p", "k" * 300: "v",
                                 "x": None})
    assert flat["a.b.c"] == "1" and flat["x"] == "None"
    assert "Password" not in flat
    assert ("k" * tracking.MAX_PARAM_KEY) in flat
