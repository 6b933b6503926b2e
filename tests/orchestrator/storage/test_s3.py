"""Sweeps on an S3 object store: a real S3-API server (moto in server mode on 127.0.0.1, credentials checked:
tests/support/s3_server.py), reached as a user of MinIO or Ceph would reach it.

The module runs one small sweep of real tasks that writes every result table (a pretraining, a naive
fine-tuning of it, the path between them) twice from this process on one local Ray: on local storage, and on
the bucket with the credentials and the endpoint in the storage URI only
(`s3://KEY:SECRET@BUCKET/runs?endpoint_override=127.0.0.1:PORT&scheme=http`, no AWS variable set), logging to
an `mlflow server` whose artifacts are in the bucket too. The run on the bucket goes through a proxy
(tests/support/flaky_proxy.py) that resets every connection for OUTAGE_S seconds once its first task has
finished: it must wait that out. The tests then look at what each left: equal
tables; through the command line a rerun all cached, `claims`, `status` and `report` against the bucket;
the runs, report and figures through MLflow's REST API; `compact`, `open_sweep` and README's queries on the
bucket; no credential anywhere (output, bucket, Ray's session files). Other tests: the lock on the object store (conditional writes), bad
credentials / a missing bucket refused before any task runs, a killed upload, requests waited out through a
shorter outage and one clear error after a longer one."""
from __future__ import annotations

import copy
import json
import logging
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import cloudpickle
import pandas as pd
import pyarrow.fs as pafs
import pytest

from orchestrator import knobs, vocab
from orchestrator.results import compact, tables
from orchestrator.storage import conditional, lock, retry
from orchestrator.storage.retry import StoreUnreachable
from orchestrator.storage.layout import Storage, SweepLayout, open_sweep_dir
from tests.conftest import REPO, clean_env, write_spec
from tests.support.flaky_proxy import FlakyProxy
from tests.support.s3_server import s3_env, s3_server  # noqa: F401
from tests.orchestrator.run.test_mlflow_server import artifact_names, get, search_runs, serving, tags_of

pytestmark = pytest.mark.timeout(900)

# 1 pretraining (with the cue), 1 naive fine-tuning of it, 1 linear path between the two: every table is
# written, and every kind of object (spec, plan, checkpoints read back by the next task, fragments, report)
SMALL = {"cue_proportions": [0.9], "finetune": {"methods": ["naive"]},
         "paths": {"pairs": ["pretrained~ft"], "kinds": ["linear"], "alignments": []},
         "max_concurrent": 2, "mlflow": {"enabled": False}}
TASKS = 3
# the bucket's endpoint drops every connection this long in the middle of the run: longer than the AWS SDK's
# own tries (a fraction of a second), so each request is waited out by orchestrator.storage.retry, after
# its 0.5, 1 and 2 s waits (10 s cost 15.5 s: the next try after 7.5 s comes at 15.5 s)
OUTAGE_S = 3
CLI_TIMEOUT_S = 600
# columns that say when, where and by which run a row was written, not what was computed
VOLATILE = ("started_at", "finished_at", "duration_s", "device", "host", "mlflow_run_id", "cached", "git_rev")
ROW_KEYS = ("task_id", "eval_set", "split", "epoch", "alpha", "metric", "definition")
AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                 "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_PROFILE")


def cli(*args: str, env: dict, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def cli_here(capsys, *args: str) -> tuple[int, str, str]:
    """`mmc-sweep ARGS` run in this process, as `python -m orchestrator` runs it (`cli.main`) but without a
    new interpreter's start-up: (exit status, stdout, stderr). The console handler the CLI installs on the
    `orchestrator` logger is taken off again."""
    from orchestrator import cli as cli_module

    logger = logging.getLogger("orchestrator")
    handlers, level = list(logger.handlers), logger.level
    capsys.readouterr()
    try:
        code = cli_module.main(list(args))
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)
    out = capsys.readouterr()
    return code, out.out, out.err


def env_without_aws(**extra: str) -> dict:
    env = clean_env(**extra)
    for key in AWS_VARIABLES:
        env.pop(key, None)
    return env


def uri_with_credentials(server, bucket: str, key: str, secret: str, endpoint: str | None = None) -> str:
    """The storage URI a MinIO/Ceph user gives: credentials and endpoint in it (secrets URL-encoded)."""
    return server.storage_uri(bucket, endpoint=endpoint, key=key, secret=secret)


def comparable(df: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ROW_KEYS if c in df.columns]
    return (df.drop(columns=[c for c in VOLATILE if c in df.columns]).sort_values(keys).reset_index(drop=True))


def assert_same_tables(got: SweepLayout, want: SweepLayout) -> None:
    """Every result table of `got` holds the rows and values of `want`'s (the same sweep elsewhere)."""
    for table in vocab.TABLES:
        a, b = comparable(tables.read_table(got, table)), comparable(tables.read_table(want, table))
        assert len(a) and sorted(a.columns) == sorted(b.columns), table
        assert a["task_id"].value_counts().to_dict() == b["task_id"].value_counts().to_dict(), table
        pd.testing.assert_frame_equal(a, b[a.columns], check_exact=False, rtol=1e-6, atol=1e-9, obj=table)


def holding(root: Path, needles: list[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        try:
            data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        except OSError:
            continue
        found += [f"{path}: {n}" for n in needles if n.encode() in data]
    return found


@pytest.fixture(scope="module")
def runs(s3_server, tmp_path_factory):  # noqa: F811
    """The small sweep on local storage, then on the bucket (credentials and endpoint only in the URI) and
    logging to an MLflow server whose artifacts are in the bucket too, both driven from this process on one
    local Ray (its session files in a directory of their own); no AWS variable is set while they run. The
    server (`mlflow server`, SQLite backend, `--artifacts-destination s3://BUCKET/mlflow`) is given the
    endpoint by MLFLOW_S3_ENDPOINT_URL and the credentials by the standard variables, as on a cluster."""
    tmp = tmp_path_factory.mktemp("s3-runs")
    bucket = s3_server.new_bucket("runs")
    key, secret = s3_server.env["AWS_ACCESS_KEY_ID"], s3_server.env["AWS_SECRET_ACCESS_KEY"]
    proxy = FlakyProxy(s3_server.endpoint).start()    # the run reaches the bucket through it: see `_cut_mid_run`
    uri = uri_with_credentials(s3_server, bucket, key, secret, endpoint=proxy.endpoint)
    ray_tmp = Path(tempfile.mkdtemp(prefix="mmc-s3-", dir="/tmp"))   # short: Ray's socket paths have a limit
    lines: list[str] = []
    server_env = {**env_without_aws(MLFLOW_S3_ENDPOINT_URL=s3_server.endpoint),
                  **{k: v for k, v in s3_server.env.items() if k != "AWS_ENDPOINT_URL"}}
    try:
        with serving(tmp, f"sqlite:///{tmp}/mlflow.db", f"s3://{bucket}/mlflow", server_env, stop_wait_s=2) as ready:
            yield from _run_both(s3_server, tmp, ready, bucket, uri, key, secret, ray_tmp, lines, proxy)
    finally:
        proxy.stop()


def _cut_mid_run(server, bucket: str, proxy: FlakyProxy, outage: dict) -> threading.Thread:
    """Once the first task of the run on the bucket has finished (its done.json is there), every connection
    to the bucket is reset for OUTAGE_S seconds: the tasks still running, the driver and Ray Tune's syncs
    meet an endpoint that drops them. `outage` gets when it began and how many connections were cut."""

    def watch() -> None:
        deadline = time.monotonic() + CLI_TIMEOUT_S
        while time.monotonic() < deadline and not outage.get("stop"):
            if any(k.endswith("/done.json") for k in server.objects(bucket, "runs/ons3/tasks/")):
                outage["began"] = time.monotonic()
                proxy.cut(OUTAGE_S)
                time.sleep(OUTAGE_S)
                outage["resets"] = proxy.resets
                return
            time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _run_both(s3_server, tmp, ready, bucket, uri, key, secret, ray_tmp, lines, proxy):  # noqa: F811
    """The two runs of `runs` (the local one while the MLflow server starts); yields what the tests read."""
    import ray

    from orchestrator.run.sweep import run_sweep
    from orchestrator.spec.sweep_spec import load_spec

    with pytest.MonkeyPatch.context() as mp:
        for name in AWS_VARIABLES:
            mp.delenv(name, raising=False)
        if ray.is_initialized():
            ray.shutdown()
        outage: dict = {}
        watcher = None
        ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
                 configure_logging=True, logging_level="WARNING", _temp_dir=str(ray_tmp))
        try:
            (tmp / "local-spec").mkdir()
            local_spec = write_spec(tmp / "local-spec", "ons3", **SMALL)
            local = run_sweep(load_spec(local_spec, [f"storage={json.dumps(str(tmp / 'local'))}"]), report=False,
                              log=lambda line: None)
            assert local.ok, local.counts
            mlflow = ready()
            spec = write_spec(tmp, "ons3", **{**SMALL, "mlflow": {"enabled": True, "tracking_uri": mlflow}})
            watcher = _cut_mid_run(s3_server, bucket, proxy, outage)
            first = run_sweep(load_spec(spec, [f"storage={json.dumps(uri)}"]), log=lines.append)
            outage["ended"] = time.monotonic()
            assert first.ok, (first.counts, lines)
        finally:
            ray.shutdown()
            outage["stop"] = True
        if watcher is not None:
            watcher.join()
    try:
        yield {"spec": spec, "bucket": bucket, "uri": uri, "secret": secret, "key": key, "env": env_without_aws(),
               "ray_tmp": ray_tmp, "first": "\n".join(lines), "server": s3_server, "mlflow": mlflow, "outage": outage,
               "local": SweepLayout(Storage(tmp / "local"), "ons3"), "s3": SweepLayout(Storage(uri), "ons3")}
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


# ---------------------------------------------------------------- the whole sweep on the bucket

@pytest.mark.slow
def test_a_sweep_on_s3_leaves_the_tables_of_the_same_sweep_on_local_storage(runs):
    """... although its endpoint dropped every connection for OUTAGE_S seconds in the middle of the run."""
    outage = runs["outage"]
    assert outage.get("began", float("inf")) < outage["ended"] and outage["resets"] > 0, outage
    first = runs["first"]       # what the run told its user (the CLI prints these lines)
    assert "finished in" in first and f"done {TASKS}" in first, first[-2000:]
    bucket = runs["bucket"]
    assert f"results: s3://***@{bucket}/runs/ons3/results" in first, first[-1000:]   # the scheme shown
    assert f"report:  s3://***@{bucket}/runs/ons3/report/report.html" in first
    keys = runs["server"].objects(bucket, "runs/ons3/")
    assert "runs/ons3/spec.yaml" in keys and "runs/ons3/plan.parquet" in keys and "runs/ons3/report/report.html" in keys
    assert sum(k.endswith("/done.json") for k in keys) == TASKS
    assert not [k for k in keys if ".tmp-" in k], "an object store needs no temporary names"
    assert_same_tables(runs["s3"], runs["local"])


@pytest.mark.slow
def test_a_rerun_on_s3_is_all_cached_and_claims_status_and_report_read_the_bucket(runs, capsys):
    env, uri = runs["env"], runs["uri"]
    sweep_dir = uri.replace("/runs?", "/runs/ons3?")
    again = cli("claims", str(runs["spec"]), "--storage", uri, env=env)     # = run (cached), then the claims
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"{TASKS} already finished, 0 to run" in again.stdout and f"cached {TASKS}" in again.stdout, again.stdout
    assert "(a) " in again.stdout and "(d) " in again.stdout   # the claims, judged from the bucket's tables
    assert f"results: s3://***@{runs['bucket']}/runs/ons3/results" in again.stdout   # the command line's lines
    code, status, err = cli_here(capsys, "status", sweep_dir)
    assert code == 0 and "finished" in status, status + err
    code, report, err2 = cli_here(capsys, "report", sweep_dir)
    assert code == 0, report + err2
    assert f"report: s3://***@{runs['bucket']}/runs/ons3/report/report.html" in report
    said = again.stdout + again.stderr + status + err + report + err2
    assert [n for n in (runs["secret"], runs["key"]) if n in said] == []   # the URI's credentials never shown
    assert_same_tables(runs["s3"], runs["local"])


@pytest.mark.slow
def test_a_run_looks_up_each_tables_manifest_once_when_it_verifies_the_sweep(runs, monkeypatch):
    """The verification of every task at a run's start (`sweep.verify_all`) looks a table's manifest up once,
    not once per fragment: on an object store a missing manifest costs 4 requests per lookup."""
    from orchestrator.graph.dag import build_graph
    from orchestrator.results import manifest
    from orchestrator.run import sweep
    from orchestrator.spec.sweep_spec import load_spec

    graph = build_graph(load_spec(runs["spec"], [f"storage={json.dumps(runs['uri'])}"]))
    looked_up, real = [], manifest.stored_manifest_path
    monkeypatch.setattr(manifest, "stored_manifest_path", lambda layout, table: looked_up.append(table) or real(
        layout, table))
    verified = sweep.verify_all(graph, runs["s3"])
    assert len(verified) == TASKS and all(ok for ok, _ in verified.values()), verified
    # once each, and only the tables the markers list: the `tasks` rows are the driver's (no marker lists them)
    assert sorted(looked_up) == sorted(set(vocab.TABLES) - {vocab.TASKS}), looked_up


@pytest.mark.slow
def test_the_run_on_s3_logs_to_an_mlflow_server_that_keeps_the_report_and_figures_in_the_bucket(runs):
    """Through the server's REST API: the sweep's parent run, a child run per task, and on the parent the
    report and every figure, served from the bucket (`--artifacts-destination s3://BUCKET/mlflow`)."""
    base, server, bucket = runs["mlflow"], runs["server"], runs["bucket"]
    experiment = get(base, "/api/2.0/mlflow/experiments/get-by-name", experiment_name="ons3")["experiment"]
    found = search_runs(base, experiment["experiment_id"])
    (parent,) = [r for r in found if r["info"]["run_name"] == "ons3 v1"]
    assert "mlflow.parentRunId" not in tags_of(parent) and parent["info"]["status"] == "FINISHED"
    parent_id = parent["info"]["run_id"]
    children = [r for r in found if tags_of(r).get("mlflow.parentRunId") == parent_id]
    assert {tags_of(r)["task_id"] for r in children} == set(tables.read_table(runs["s3"], vocab.TASKS)["task_id"])
    report_objects = server.objects(bucket, "runs/ons3/report/")
    figures = {key.rsplit("/", 1)[-1] for key in report_objects if key.endswith(".png")}
    files = artifact_names(base, parent_id)
    assert figures and {"report.html", *figures} <= set(files), (sorted(files), sorted(report_objects))
    url = f"{base}/get-artifact?" + urllib.parse.urlencode({"path": "report.html", "run_uuid": parent_id})
    with urllib.request.urlopen(url, timeout=30) as response:
        served = response.read()
    assert served.startswith(b"<!DOCTYPE html>") and b"data:image/png;base64," in served and b"ons3" in served
    in_bucket = server.objects(bucket, "mlflow/")
    assert [k for k in in_bucket if k.endswith("/report.html")] and all(
        any(k.endswith(f"/{name}") for k in in_bucket) for name in figures)


@pytest.mark.slow
def test_open_sweep_compaction_and_readme_queries_against_the_bucket(runs, monkeypatch):
    """open_sweep on the URI; `compact` on the bucket keeps every row; with the standard AWS variables set,
    polars reads README's glob on the bucket, and DuckDB a pyarrow dataset of it (DuckDB's own S3 reader,
    its httpfs extension, cannot be installed offline)."""
    import polars as pl
    import pyarrow.dataset as ds

    import orchestrator as mmc

    sweep = mmc.open_sweep(runs["uri"].replace("/runs?", "/runs/ons3?"))
    before = {t: comparable(sweep.table(t)) for t in vocab.TABLES}
    assert sweep.spec["name"] == "ons3" and len(sweep.plan) == TASKS
    layout = sweep.layout
    done = compact.compact(layout)
    assert done and all(len([n for n in layout.storage.listdir(layout.table_dir(t)) if n.startswith("part-")]) <= 1
                        for t in vocab.TABLES if t != vocab.TASKS)
    for table in vocab.TABLES:
        pd.testing.assert_frame_equal(comparable(tables.read_table(layout, table)), before[table], obj=table)

    server, bucket = runs["server"], runs["bucket"]
    for key, value in server.env.items():       # what a user of the tables sets: the standard variables
        monkeypatch.setenv(key, value)
    results = f"s3://{bucket}/runs/ons3/results"
    paths = pl.read_parquet(f"{results}/paths/*.parquet", storage_options={"aws_allow_http": "true"})  # README's glob
    assert len(paths) == len(before[vocab.PATHS])
    by_kind = (paths.filter(pl.col("pair_type") == paths["pair_type"][0]).group_by("path_kind", "alpha")
               .agg(pl.col("agree_a").mean()).sort("path_kind", "alpha"))
    assert len(by_kind) == 3   # linear, 3 alphas
    import duckdb
    barriers = ds.dataset(f"{results}/barriers/", format="parquet")  # noqa: F841 - DuckDB reads it by name
    found = duckdb.sql("SELECT pair_type, count(*) AS n FROM barriers WHERE metric = 'loss' GROUP BY ALL").fetchall()
    assert sum(n for _, n in found) == int((before[vocab.BARRIERS]["metric"] == "loss").sum())


@pytest.mark.slow
def test_no_credential_of_the_storage_uri_reaches_output_the_bucket_or_ray(runs):
    """The run's storage URI held the key and secret: none reaches stdout/stderr, an object in the bucket
    (spec.yaml, plan, tables, report, Ray's experiment state) or Ray's session files (logs, state)."""
    secret, key = runs["secret"], runs["key"]
    needles = [secret, urllib.parse.quote(secret, safe=""), key]
    assert [n for n in needles if n in runs["first"]] == []
    server, bucket = runs["server"], runs["bucket"]
    s3 = server.client()
    leaked = []
    for name in server.objects(bucket):
        body = s3.get_object(Bucket=bucket, Key=name)["Body"].read()
        leaked += [f"{name}: {n}" for n in needles if n.encode() in body]
    assert leaked == []
    ray_objects = [k for k in server.objects(bucket, "runs/ons3/ray/")]
    assert ray_objects, "Ray Tune's run directory is on the bucket (through the storage's file system)"
    assert holding(runs["ray_tmp"], needles) == []


# ---------------------------------------------------------------- faults of an object store

def test_wrong_credentials_a_missing_bucket_and_a_silent_endpoint_are_refused_before_any_task_runs(
        s3_server, tmp_path, monkeypatch, capsys):  # noqa: F811
    server, spec = s3_server, str(write_spec(tmp_path, "ons3", **SMALL))
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    key, secret = server.env["AWS_ACCESS_KEY_ID"], server.env["AWS_SECRET_ACCESS_KEY"]
    bucket = server.new_bucket("refused")
    cases = {
        "wrong secret": (uri_with_credentials(server, bucket, key, "not-the-secret+/x"),
                         "refused the credentials (access denied to bucket", "not-the-secret"),
        "missing bucket": (uri_with_credentials(server, "no-such-bucket-mmc", key, secret),
                           "bucket `no-such-bucket-mmc` does not exist", secret),
        "silent endpoint": (uri_with_credentials(server, bucket, key, secret, endpoint="http://127.0.0.1:1"),
                            "the object store at 127.0.0.1:1 does not answer; check the endpoint", secret),
    }
    for name, (uri, said, hidden) in cases.items():
        code, out, err = cli_here(capsys, "run", spec, "--storage", uri, "--runner", "tests.support.runners:noop")
        assert code == 2, (name, out[-2000:], err[-2000:])
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and "Traceback" not in err, (name, err)
        assert lines[0].startswith("error: storage s3://***@") and said in lines[0], (name, lines[0])
        assert hidden not in err and urllib.parse.quote(hidden, safe="") not in err, name
        assert "sweep `ons3`" not in out, name   # refused before the plan was even printed
    assert server.objects(bucket) == {}          # nothing written


_UPLOAD = """
import sys, time
from orchestrator.storage.layout import Storage
storage = Storage(sys.argv[1])
print("writing", flush=True)
# what `Storage.write_bytes` does on an object store (one output stream: a multipart upload), with the
# upload held open after its first parts: however busy the machine, it is still under way when killed
with storage.fs.open_output_stream(storage.join("big.bin")) as f:
    f.write(b"x" * (32 << 20))
    time.sleep(600)
    f.write(b"x" * (32 << 20))
print("written", flush=True)
"""


def test_a_killed_upload_leaves_no_object(s3_server):  # noqa: F811
    """SIGKILL while a large object is being uploaded (a multipart upload under way): no object appears, so
    no partial file can be taken for a finished one."""
    server, env = s3_server, env_without_aws()
    bucket = server.new_bucket("killed")
    uri = uri_with_credentials(server, bucket, server.env["AWS_ACCESS_KEY_ID"], server.env["AWS_SECRET_ACCESS_KEY"])
    proc = subprocess.Popen([sys.executable, "-c", _UPLOAD, uri], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    start = len(server.requests())
    deadline = time.monotonic() + 120
    while not any("partNumber=" in r.query for r in server.requests()[start:]):   # the first part arrived
        assert proc.poll() is None and time.monotonic() < deadline, "the upload ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert server.objects(bucket) == {}


def test_an_outage_shorter_than_the_retry_time_is_waited_out_and_a_longer_one_is_one_clear_error(
        s3_env, monkeypatch, caplog):
    """Behind a proxy that resets every connection: a write, a read and the lock's conditional create, started
    together during a 2 s outage, succeed once it ends (one warning for the outage, one when it ends,
    credentials redacted); with the store cut off for longer than MMC_STORAGE_RETRY_S, a write and a
    conditional replace are a `StoreUnreachable` that says so, and nothing was written."""
    server, bucket = s3_env
    proxy = FlakyProxy(server.endpoint).start()
    try:
        key, secret = server.env["AWS_ACCESS_KEY_ID"], server.env["AWS_SECRET_ACCESS_KEY"]
        storage = Storage(uri_with_credentials(server, bucket, key, secret, endpoint=proxy.endpoint))
        cond = conditional.for_storage(storage)
        storage.write_bytes(storage.join("a"), b"1")
        caplog.set_level(logging.WARNING, logger="orchestrator.storage")
        calls = {"write": lambda: storage.write_bytes(storage.join("b"), b"2"),
                 "read": lambda: storage.read_bytes(storage.join("a")),
                 "lock": lambda: cond.create(storage.join("c"), b"3")}
        answers, took = {}, {}

        def call(name: str) -> None:
            start = time.monotonic()
            answers[name] = calls[name]()
            took[name] = time.monotonic() - start

        proxy.cut(2)
        threads = [threading.Thread(target=call, args=(name,)) for name in calls]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers["read"] == b"1" and answers["lock"] and set(took) == set(calls), answers
        assert min(took.values()) >= 1.5, took        # each did wait the outage out
        assert server.objects(bucket) == {"runs/a": 1, "runs/b": 1, "runs/c": 1}
        said = [r.getMessage() for r in caplog.records]
        assert sum("cannot be reached" in m for m in said) == 1 and sum("answers again" in m for m in said) == 1
        assert all(f"storage s3://***@{bucket}/runs" in m and secret not in m and key not in m for m in said)

        monkeypatch.setenv(knobs.STORAGE_RETRY_S.name, "2")
        proxy.cut(None)
        with pytest.raises(StoreUnreachable, match=r"did not answer within MMC_STORAGE_RETRY_S=2 s .*rerun the same"
                                                   r" command") as raised:
            storage.write_bytes(storage.join("d"), b"4")
        assert raised.value.exit_code == 2 and isinstance(raised.value, OSError) and secret not in str(raised.value)
        with pytest.raises(StoreUnreachable):
            cond.replace(storage.join("c"), b"5", "some-tag")
        proxy.restore()
        assert server.objects(bucket) == {"runs/a": 1, "runs/b": 1, "runs/c": 1}
    finally:
        proxy.stop()


def test_answers_of_the_store_are_never_retried(s3_env):
    """Not found, access denied, a failed condition: answers, returned at once, not waited on."""
    server, bucket = s3_env
    storage = Storage(f"s3://{bucket}/runs")
    calls = []
    real = storage.fs

    class Counting:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(real, name)

    storage.fs = Counting()
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(storage.join("missing"))
    assert calls == ["open_input_stream"]
    assert not retry.is_unreachable(PermissionError("AWS Error ACCESS_DENIED during HeadObject operation"))
    assert retry.is_unreachable(OSError("AWS Error NETWORK_CONNECTION during PutObject operation: curlCode: 7"))
    assert retry.is_unreachable(OSError("AWS Error SLOW_DOWN during PutObject operation: Please reduce"))


# ---------------------------------------------------------------- the lock on an object store

@pytest.fixture
def s3_layout(s3_env):  # noqa: F811
    server, bucket = s3_env
    return SweepLayout(Storage(f"s3://{bucket}/runs"), "held")


def _plant(layout, **record) -> None:
    layout.storage.write_bytes(layout.lock_file(), json.dumps(record).encode())


def test_of_drivers_started_at_once_on_s3_exactly_one_wins(s3_layout):
    """Eight drivers create the lock in the same instant: the store's conditional create lets one win."""
    for _round in range(3):
        results, barrier = [], threading.Barrier(8)

        def start() -> None:
            me, held = lock._me(), {"cond": lock._conditional_writes(s3_layout), "tag": None}
            barrier.wait()
            try:
                lock._acquire(s3_layout, me, held)
                results.append(me["token"])
            except lock.LockError:
                results.append(None)

        threads = [threading.Thread(target=start) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [r for r in results if r]
        assert len(winners) == 1, results
        assert json.loads(s3_layout.storage.read_bytes(s3_layout.lock_file(), replaced=True))["token"] == winners[0]
        s3_layout.storage.delete(s3_layout.lock_file())


def test_the_lock_on_s3_refuses_a_live_holder_takes_over_an_expired_one_and_renews(s3_layout, monkeypatch):
    now = time.time()
    theirs = dict(pid=os.getpid(), host="another-host", boot_id="b", started_at=now, renewed_at=now, lease_s=60,
                  token="theirs")
    _plant(s3_layout, **theirs)
    with pytest.raises(lock.LockError, match=r"another `mmc-sweep run` \(pid \d+ on another-host.*is using s3://"):
        with lock.sweep_lock(s3_layout):
            pass
    assert json.loads(s3_layout.storage.read_bytes(s3_layout.lock_file(), replaced=True)) == theirs    # left as it was

    _plant(s3_layout, **{**theirs, "renewed_at": now - 3600})          # expired: taken over
    monkeypatch.setenv(knobs.LOCK_LEASE_S.name, "0.6")
    with lock.sweep_lock(s3_layout):
        held = json.loads(s3_layout.storage.read_bytes(s3_layout.lock_file(), replaced=True))
        assert held["pid"] == os.getpid() and held["token"] != "theirs"
        time.sleep(1.0)                                                    # renewed every 0.2 s
        renewed = json.loads(s3_layout.storage.read_bytes(s3_layout.lock_file(), replaced=True))
        assert renewed["token"] == held["token"] and renewed["renewed_at"] > held["renewed_at"]
    assert not s3_layout.storage.exists(s3_layout.lock_file())


def test_a_takeover_on_s3_never_replaces_a_lock_written_since_it_was_judged(s3_layout):
    """Between reading a stale lock and replacing it, another driver took it: the conditional replace fails."""
    now = time.time()
    _plant(s3_layout, pid=1, host="another-host", renewed_at=now - 3600, lease_s=60, token="stale")
    cond = conditional.for_storage(s3_layout.storage)
    read = cond.read(s3_layout.lock_file(), lock.MAX_LOCK_BYTES)
    newer = dict(pid=2, host="third-host", renewed_at=now, lease_s=60, token="newer")
    _plant(s3_layout, **newer)
    assert cond.replace(s3_layout.lock_file(), b"{}", read.tag) is None
    assert cond.delete(s3_layout.lock_file(), read.tag) is False
    assert json.loads(s3_layout.storage.read_bytes(s3_layout.lock_file(), replaced=True)) == newer


def test_a_holder_on_s3_whose_lock_was_taken_over_stops_and_a_deleted_lock_is_written_again(s3_layout, monkeypatch):
    monkeypatch.setenv(knobs.LOCK_LEASE_S.name, "0.6")
    stopped = []
    monkeypatch.setattr(lock, "stop_this_driver", lambda: stopped.append(True))
    with lock.sweep_lock(s3_layout):
        mine = json.loads(s3_layout.storage.read_bytes(s3_layout.lock_file(), replaced=True))
        s3_layout.storage.delete(s3_layout.lock_file())                   # deleted by hand
        deadline = time.time() + 10
        while not s3_layout.storage.exists(s3_layout.lock_file()) and time.time() < deadline:
            time.sleep(0.05)
        assert json.loads(s3_layout.storage.read_bytes(s3_layout.lock_file(), replaced=True))["token"] == mine["token"]
        other = dict(pid=3, host="another-host", renewed_at=time.time(), lease_s=60, token="taker")
        _plant(s3_layout, **other)                                         # taken over behind its back
        while not stopped and time.time() < deadline:
            time.sleep(0.05)
        assert stopped == [True]
        assert json.loads(s3_layout.storage.read_bytes(s3_layout.lock_file(), replaced=True)) == other
    assert json.loads(s3_layout.storage.read_bytes(s3_layout.lock_file(), replaced=True)) == other   # not released: not ours


def test_files_written_together_on_s3_are_each_uploaded_once_in_order(s3_env):
    """A report's files (`Storage.write_files`) on an object store: one PUT each, in the order given (the page
    last, so a reader never finds a page whose tables are not there yet), every one with its bytes."""
    server, bucket = s3_env
    layout = open_sweep_dir(f"s3://{bucket}/runs/together")
    files = {f"{layout.report_dir()}/{name}": name.encode() * 3 for name in ("summary.md", "claims.md", "report.html")}
    start = len(server.requests(bucket))
    layout.storage.write_files(files)
    puts = [r for r in server.requests(bucket)[start:] if r.kind == "PUT"]
    assert [r.kind for r in server.requests(bucket)[start:]] == ["PUT"] * 3
    assert [p.path.rsplit("/", 1)[-1] for p in puts] == ["summary.md", "claims.md", "report.html"]
    assert all(layout.storage.read_bytes(path) == data for path, data in files.items())


def test_writes_on_s3_are_single_uploads_and_uris_keep_their_scheme(s3_env):
    """A small object is one PutObject (no temporary name, no copy, no directory markers); messages and
    Ray get the storage's URI / file system, never a path that reads like a local one."""
    server, bucket = s3_env
    layout = open_sweep_dir(f"s3://{bucket}/runs/writes")
    start = len(server.requests(bucket))
    layout.storage.write_bytes(layout.marker_file("pretrain", "t1"), b"{}")
    assert [r.kind for r in server.requests(bucket)[start:]] == ["PUT"]
    assert server.objects(bucket) == {"runs/writes/tasks/pretrain/t1/done.json": 2}
    assert layout.storage.shown(layout.root) == f"s3://{bucket}/runs/writes"
    ray = layout.ray_storage()
    assert ray["storage_path"] == f"{bucket}/runs/writes/ray"
    assert isinstance(ray["storage_filesystem"], pafs.S3FileSystem)


def test_a_file_replaced_while_it_is_read_is_read_whole_or_not_at_all(s3_env):
    """pyarrow reads an object as HEAD (its size) then GET: replaced in between by one of another size,
    the bytes come back cut to the old size or padded with zeros. The lock, progress records and
    manifests are replaced while others read them: `read_bytes(replaced=True)` returns only a version
    that was written, whole. Plain reads of the same object, meanwhile, are counted torn or not."""
    server, bucket = s3_env
    layout = open_sweep_dir(f"s3://{bucket}/runs/replaced")
    path = layout.progress_file("pretrain", "t1")
    versions = [json.dumps({"version": i, "pad": "x" * (i % 7)}).encode() for i in range(20_000)]
    written = set(versions)
    layout.storage.write_bytes(path, versions[0])
    stop = threading.Event()

    def replace_again_and_again() -> None:   # every few ms, with a pause every tenth write: a run replaces these a
        for i, data in enumerate(versions[1:]):   # few times a second at most; a writer that never paused could, on a
            if stop.wait(0.05 if i % 10 == 9 else 0.003):   # loaded machine, land inside every try of a read
                return
            layout.storage.write_bytes(path, data)

    writer = threading.Thread(target=replace_again_and_again)
    writer.start()
    whole, torn, reads, not_at_all = [], 0, 0, 0
    try:   # 60 reads, and on a loaded machine (a slow writer) more, until the replacing shows (at most 600)
        while reads < 60 or (len(set(whole)) <= 10 and reads < 600 and writer.is_alive()):
            reads += 1
            try:
                whole.append(layout.storage.read_bytes(path, replaced=True))
            except OSError as error:   # replaced inside each of REPLACED_READ_ATTEMPTS tries: not at all, said so
                assert "was replaced while it was read" in str(error)
                not_at_all += 1
            torn += layout.storage.read_bytes(path) not in written
    finally:
        stop.set()
        writer.join()
    assert all(data in written for data in whole), \
        f"{[d for d in whole if d not in written][:3]} (plain reads torn meanwhile: {torn} of {reads})"
    assert not_at_all < reads / 2, f"{not_at_all} of {reads} reads gave up"
    assert len({json.loads(d)["version"] for d in whole}) > 10        # it was being replaced all along


def test_the_file_system_given_to_ray_works_and_pickles_without_the_credentials(s3_env, monkeypatch):
    """Ray Tune pickles its `storage_filesystem` into the experiment state it writes on the bucket: the one
    it gets reaches the bucket with the URI's credentials, and its pickle holds neither key nor secret. A
    copy made in this process (Tune deep-copies a trial's storage and reads a failed trial's error through
    it) reaches the bucket too, with no AWS variable set, and pickles without them again."""
    server, bucket = s3_env
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    key, secret = server.env["AWS_ACCESS_KEY_ID"], server.env["AWS_SECRET_ACCESS_KEY"]
    layout = open_sweep_dir(uri_with_credentials(server, bucket, key, secret).replace("/runs?", "/runs/ray?"))
    ray = layout.ray_storage()
    fs = ray["storage_filesystem"]
    with fs.open_output_stream(f"{ray['storage_path']}/probe") as f:
        f.write(b"ok")
    assert server.objects(bucket) == {"runs/ray/ray/probe": 2}
    for dumped in (pickle.dumps(fs), cloudpickle.dumps(fs), pickle.dumps(ray)):
        assert key.encode() not in dumped and secret.encode() not in dumped
    with layout.storage.open_output_stream(layout.fragment("paths", "t1")) as f:   # no directory marker (a PUT)
        f.write(b"x")
    assert server.objects(bucket) == {"runs/ray/ray/probe": 2, "runs/ray/results/paths/t1.parquet": 1}
    copied = copy.deepcopy(pickle.loads(pickle.dumps(fs)))
    with copied.open_output_stream(f"{ray['storage_path']}/copied") as f:
        f.write(b"ok")
    assert server.objects(bucket) == {"runs/ray/ray/probe": 2, "runs/ray/results/paths/t1.parquet": 1,
                                      "runs/ray/ray/copied": 2}
    assert key.encode() not in pickle.dumps(copied) and secret.encode() not in pickle.dumps(copied)
