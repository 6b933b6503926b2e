"""Multi-node truth: `python -m orchestrator run SPEC --address ...` against a Ray cluster whose
worker node has a disk of its own (see tests/support/ns_cluster.py), plus the pieces of
`orchestrator.run.visibility` that need no cluster.

The cluster is module-scoped; each test looks only at its own sweep directory and at what it
changed, so the tests do not depend on their order.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator import vocab
from orchestrator.results import tables
from orchestrator.graph.dag import build_graph
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.run import visibility
from tests.conftest import REPO, write_spec
from tests.support.processes import ended, output, start_logged, wait_for
from tests.support.reference import assert_same_tables, one_process_tables
from tests.support.ns_cluster import WORKER_HOST, WORKER_RESOURCE, HEAD_RESOURCE, ns_cluster  # noqa: F401
from tests.support.s3_server import s3_server  # noqa: F401

# 2 pretrain, 1 finetune, 2 path evaluations (cue~nocue, pretrained~ft): 1 epoch, width 8
SMALL = {"cue_proportions": [0.0, 0.9], "finetune": {"methods": ["naive"]},
         "paths": {"pairs": ["cue~nocue", "pretrained~ft"], "kinds": ["linear"], "alignments": []},
         "max_concurrent": 2}
CLI_TIMEOUT_S = 300
HELD_TIMEOUT_S = 240
CIFAR_FILES = [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)] + ["cifar-10-batches-py/test_batch"]


def cli(cluster, spec: Path, *args: str, address: str | None = "cluster", timeout: float = CLI_TIMEOUT_S,
        popen: bool = False):
    """`python -m orchestrator run SPEC --no-report [--address CLUSTER] ARGS` with the cluster's token and
    no RAY_ADDRESS of the caller (address=None: a local Ray of its own); popen: started, its output to a file."""
    cmd = [sys.executable, "-m", "orchestrator", "run", str(spec), "--no-report", *args]
    if address:
        cmd += ["--address", cluster.address if address == "cluster" else address]
    if popen:
        return start_logged(cmd, cluster.env, REPO, cluster.base, spec.stem)
    return subprocess.run(cmd, cwd=REPO, env=cluster.env, capture_output=True, text=True, timeout=timeout)


def head_files(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*"))


def worker_files(cluster, root: Path) -> list[str]:
    out = cluster.in_worker("find", str(root), "-mindepth", "1")
    assert out.returncode == 0, out.stderr
    return sorted(out.stdout.split())


def spec_file(cluster, name: str, folder: str = "specs", **overrides) -> Path:
    directory = cluster.base / folder
    directory.mkdir(exist_ok=True)
    return write_spec(directory, name, **{**SMALL, **overrides})


def layout_of(spec) -> SweepLayout:
    return SweepLayout(Storage(spec.storage), spec.name)


def worker_node(cluster) -> dict:
    (node,) = [n for n in cluster.nodes() if n["alive"] and WORKER_RESOURCE in n["resources"]]
    return node


# ---------------------------------------------------------------- refused: local paths

def test_local_storage_data_and_mlflow_store_are_refused_before_any_task_runs(ns_cluster):
    cluster = ns_cluster
    root = cluster.data_dir / "head-only"      # a root of this test's own: other tests copy datasets to theirs
    for name in CIFAR_FILES:   # a dataset that exists on the head's disk only
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not really cifar" * 8)
    store = f"sqlite:///{cluster.storage_dir}/tracking.db"
    spec = spec_file(cluster, "local", storage=str(cluster.storage_dir),
                     data={"dataset": "cifar10", "root": str(root)}, mlflow={"tracking_uri": store})
    before = head_files(cluster.disk), worker_files(cluster, cluster.disk)
    worker = worker_node(cluster)

    out = cli(cluster, spec)

    assert out.returncode == 2, out.stdout[-3000:] + out.stderr[-3000:]
    err = out.stderr
    assert "Traceback" not in err, err
    node = f"{worker['ip']} (host {WORKER_HOST}, node id {worker['id'][:12]})"
    sweep_dir = cluster.storage_dir / "local"
    assert (f"`storage` must be reachable from every node of the Ray cluster, but the sweep directory {sweep_dir}"
            in err), err
    assert f"  - node {node}: the directory does not exist there" in err, err
    assert "s3://BUCKET/mmc-runs" in err and "gs://BUCKET/mmc-runs" in err and "NFS" in err
    assert "`data.root` must hold the same dataset on every node" in err, err
    assert f"{root}/cifar-10-batches-py/data_batch_1 is missing (and 5 more of its 6 files)" in err
    assert (f"`mlflow.tracking_uri` must be reachable from every node of the Ray cluster, but "
            f"{cluster.storage_dir}, the directory of the MLflow store {store}") in err
    assert "the driver's probe file is not in it" in err and "--tracking-uri http://HOST:5000" in err
    assert f"mmc-sweep data download cifar10 --root {root}" in err
    assert "sweep `local`" not in out.stdout   # refused before the plan was even printed: no task ran
    # nothing written, on either node (no sweep directory, lock, probe or MLflow file)
    assert (head_files(cluster.disk), worker_files(cluster, cluster.disk)) == before
    print("\n--- the refusal, as the CLI prints it ---\n" + err[err.index("error: "):])


def test_shared_storage_and_per_node_dataset_copies_pass_the_check(ns_cluster):
    """Storage and MLflow store on the shared directory; the dataset copied to the same path on each node."""
    cluster = ns_cluster
    root = cluster.data_dir / "copies"         # a root of this test's own (see the test above)
    for name in CIFAR_FILES:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"c" * 100)
    copy = " && ".join(f"mkdir -p {(root / n).parent} && head -c 100 /dev/zero > {root / n}" for n in CIFAR_FILES)
    assert cluster.in_worker("sh", "-c", copy).returncode == 0
    spec = spec_file(cluster, "copies", storage=str(cluster.shared / "copies-runs"),
                     data={"dataset": "cifar10", "root": str(root)},
                     mlflow={"tracking_uri": f"sqlite:///{cluster.shared}/copies-mlflow/mlflow.db"})
    before = head_files(cluster.shared), worker_files(cluster, cluster.shared)
    script = ("import json, sys, ray\n"
              "from orchestrator.spec.sweep_spec import load_spec\n"
              "from orchestrator.storage.layout import Storage, SweepLayout\n"
              "from orchestrator.run.visibility import check_shared_paths, targets\n"
              "spec = load_spec(sys.argv[1]); layout = SweepLayout(Storage(spec.storage), spec.name)\n"
              "ray.init(address=sys.argv[2], log_to_driver=False, logging_level='ERROR')\n"
              "print('KEYS', json.dumps([t.key for t in targets(spec, layout)]))\n"
              "print('PROBLEMS', json.dumps(check_shared_paths(spec, layout)))\n")
    out = subprocess.run([sys.executable, "-c", script, str(spec), cluster.address], cwd=REPO, env=cluster.env,
                         capture_output=True, text=True, timeout=120)
    said = {ln.split(" ", 1)[0]: json.loads(ln.split(" ", 1)[1]) for ln in out.stdout.splitlines()
            if ln.startswith(("KEYS ", "PROBLEMS "))}
    assert said.get("KEYS") == ["storage", "data.root", "mlflow.tracking_uri"], out.stdout[-2000:] + out.stderr[-2000:]
    assert said["PROBLEMS"] == []
    # the probes are gone again, and so are the directories made for them
    assert (head_files(cluster.shared), worker_files(cluster, cluster.shared)) == before


# ---------------------------------------------------------------- shared storage; a node dies mid-sweep

def _kill_the_held_worker(cluster, proc, held, look=lambda: None, replace: bool = False) -> tuple[list[str], str]:
    """While `proc` (a sweep) runs: once `held()` names the task the worker holds (the test runner's
    `paused-<task>` markers), `look()` at the cluster, SIGKILL the worker node (with `replace`, a new worker
    joins while the run goes on), and let the sweep end (SIGKILLed if it does not, or if a step failed).
    Returns the held tasks and the sweep's output."""
    with ended(proc, CLI_TIMEOUT_S):
        found = wait_for(held, proc, "a task was held on the worker node", HELD_TIMEOUT_S)
        look()
        cluster.kill_worker()
        if replace:
            cluster.start_worker()
    return [name[len("paused-"):] for name in found], output(proc)


@pytest.mark.slow
def test_worker_killed_mid_sweep_then_rerun_loses_and_duplicates_nothing(ns_cluster, tmp_path):
    """A sweep on both nodes through the shared storage. The fine-tuning task runs on the worker
    (custom resource), pretraining and path evaluation on the head, and the worker writes nothing to
    its own disk. The fine-tuning is held on the worker after its epoch by the test runner, its resume
    state saved, while the head finishes the rest it can. Then the worker node is SIGKILLed: the task
    fails, its dependent is skipped, the sweep ends with exit 1. With a new worker the same command
    finishes the rest: every task once, each on its node, and the tables equal those of the same tasks
    run one after another in one process (tests/support/reference.py)."""
    from tests.support import runners
    from tests.support.runners import PAUSE_ENV, hook_env

    cluster = ns_cluster
    storage = cluster.shared / "kill-runs"
    on_worker, on_head = {"cpus": 1, "custom": {WORKER_RESOURCE: 1}}, {"cpus": 1, "custom": {HEAD_RESOURCE: 1}}
    spec = spec_file(cluster, "kill", storage=str(storage),
                     resources={"pretrain": on_head, "finetune": on_worker, "path_eval": on_head})
    graph = build_graph(load_spec(spec))
    layout = SweepLayout(Storage(str(storage)), "kill")
    events = cluster.shared / "kill-events"

    t1 = time.time()
    cluster.kill_worker()   # a worker whose fine-tuning tasks hold after epoch 0 until killed
    held_worker = cluster.start_worker(env=hook_env(events, **{PAUSE_ENV: "finetune:0"}))
    proc = cli(cluster, spec, "--runner", runners.name("real"), popen=True)   # holds where the worker's env says
    (held_task,), first = _kill_the_held_worker(cluster, proc, lambda: [p.name for p in events.glob("paused-*")])
    assert graph.tasks[held_task].kind == "finetune"
    assert proc.returncode == 1, first[-3000:]    # the task on the dead node failed; the head went on
    assert "Rerun the same command to retry them" in first, first[-3000:]
    first_tasks = tables.read_table(layout, "tasks").set_index("task_id")
    assert first_tasks.loc[held_task, "status"] == "failed", first_tasks[["status", "device"]]
    done_before = int((first_tasks["status"] == "finished").sum())
    assert done_before >= 2   # both pretrainings, before the fine-tuning could start

    t2 = time.time()
    cluster.start_worker()
    cluster.wait_for_nodes(alive=2, gone=(held_worker,))
    worker_disk = worker_files(cluster, cluster.disk)     # the new worker's own (fresh) disk
    t3 = time.time()
    again = cli(cluster, spec)
    print(f"\nheld worker + killed run {t2 - t1:.0f} s, new worker {t3 - t2:.0f} s, rerun {time.time() - t3:.0f} s")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"{done_before} already finished" in again.stdout, again.stdout[-3000:]   # kept, not recomputed

    tasks = tables.read_table(layout, "tasks")
    assert sorted(tasks["task_id"]) == sorted(graph.tasks), tasks["task_id"].tolist()   # each exactly once
    assert set(tasks["status"]) == {"finished"}
    hosts = {row.task_id: row.device.rsplit(":", 1)[-1] for row in tasks.itertuples()}   # cpu:<arch>:<host>
    for task_id, task in graph.tasks.items():    # the held fine-tuning ran again on the new worker
        assert (hosts[task_id] == WORKER_HOST) == (task.kind == "finetune"), (task_id, hosts[task_id])
    assert len(set(hosts.values())) == 2
    assert worker_files(cluster, cluster.disk) == worker_disk   # the worker wrote nothing to its own disk
    single = one_process_tables(spec_file(cluster, "kill", folder="single"), tmp_path / "single")  # same task ids
    assert_same_tables(layout, single, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_task_left_waiting_for_a_node_that_died_stops_the_run_after_wait_for_nodes(ns_cluster):
    """A cluster that cannot grow loses its worker, the only node with `ns_worker`, while both pretrainings
    are pinned to it: the one it ran fails (its trial crashed, and no autoscaler could start a node to run
    it again), the other is handed out and waits for a node that never comes. The run says so, and stops as
    Ctrl-C does once --wait-for-nodes seconds pass in which no task ends (exit 130, the failure recorded);
    before, it waited for ever."""
    from tests.support import runners
    from tests.support.runners import PAUSE_ENV, hook_env

    cluster = ns_cluster
    storage = cluster.shared / "stall-runs"
    spec = spec_file(cluster, "stall", storage=str(storage),
                     resources={"pretrain": {"cpus": 1, "custom": {WORKER_RESOURCE: 1}}})
    layout = SweepLayout(Storage(str(storage)), "stall")
    events = cluster.shared / "stall-events"
    cluster.kill_worker()
    held_worker = cluster.start_worker(env=hook_env(events, **{PAUSE_ENV: "pretrain:0"}))
    proc = cli(cluster, spec, "--runner", runners.name("real"), "--wait-for-nodes", "5", popen=True)
    try:
        (held_task,), out = _kill_the_held_worker(cluster, proc, lambda: [p.name for p in events.glob("paused-*")])
    finally:
        cluster.start_worker()      # the module's other tests find a worker, as the fixture left it
        cluster.wait_for_nodes(alive=2, gone=(held_worker,))
    assert proc.returncode == 130, out[-3000:]
    assert "started again" not in out, out[-3000:]      # no autoscaler: the crashed task fails at once
    assert ("waiting: 1 pretrain task asking for {CPU 1, ns_worker 1}, which no node of the cluster has (a node "
            "left?) and none is starting") in out, out[-3000:]
    assert "stopping the run: 1 pretrain task asking for {CPU 1, ns_worker 1}" in out, out[-3000:]
    assert "(--wait-for-nodes 5); finished tasks are kept" in out, out[-3000:]
    tasks = tables.read_table(layout, "tasks").set_index("task_id")
    assert tasks.loc[held_task, "status"] == "failed" and "crashed" in tasks.loc[held_task, "error"]


# every task kind (8 tasks): 2 pretrainings, a fine-tuning, a midpoint and a weight alignment between the two
# pretrained models, and the quadratic, aligned and pretrained~ft paths
ALL_KINDS = {"paths": {"pairs": ["cue~nocue", "pretrained~ft"], "kinds": ["quadratic", "aligned"],
                       "alignments": ["weight"]}, "mlflow": {"enabled": False}}


@pytest.mark.slow
def test_on_s3_nodes_that_share_no_disk_run_every_kind_and_a_killed_worker_then_rerun_gives_the_same_tables(
        ns_cluster, s3_server, tmp_path):  # noqa: F811
    """No directory is shared between the nodes: storage is a bucket of the S3 server (its URI carries the
    endpoint and the credentials; the nodes share the network, not a disk), the dataset is the built-in one
    on each node. Every task kind is pinned to the worker; its fine-tuning is held after its epoch (the
    test runner, with its marker on the worker's own disk), the worker node is SIGKILLed and a new worker
    joins, as an autoscaler would bring one: the run ends with the fine-tuning failed and its path skipped.
    The same command then finishes the rest: every task once, every kind on the worker, nothing left on
    the worker's disk but the test runner's markers, and the tables those of the same tasks run one after
    another in one process (tests/support/reference.py)."""
    from tests.support import runners
    from tests.support.runners import PAUSE_ENV, hook_env

    cluster, server = ns_cluster, s3_server
    bucket = server.new_bucket("nodisk")
    uri = server.storage_uri(bucket)
    on_worker = {"cpus": 1, "custom": {WORKER_RESOURCE: 1}}
    spec = spec_file(cluster, "nodisk", folder="nodisk", **ALL_KINDS,
                     resources={kind: on_worker for kind in vocab.TASK_KINDS})
    graph = build_graph(load_spec(spec))
    assert {t.kind for t in graph.tasks.values()} == set(vocab.TASK_KINDS)
    layout = SweepLayout(Storage(uri), "nodisk")
    events = cluster.storage_dir / "nodisk-events"   # on the worker's own disk (a tmpfs of its namespace)

    t1 = time.time()
    cluster.kill_worker()   # a worker whose fine-tuning holds after epoch 0 until killed
    cluster.start_worker(env=hook_env(events, **{PAUSE_ENV: "finetune:0"}))
    worker_disk = worker_files(cluster, cluster.disk)

    def held() -> list[str]:
        return [n for n in cluster.in_worker("ls", str(events)).stdout.split() if n.startswith("paused-")]

    def looked_at_while_held() -> None:
        assert server.objects(bucket, "runs/nodisk/tasks/pretrain/"), "the pretrainings wrote to the bucket"
        assert [p for p in worker_files(cluster, cluster.disk) if not p.startswith(str(events))] == worker_disk

    proc = cli(cluster, spec, "--storage", uri, "--runner", runners.name("real"), popen=True)
    (held_task,), first = _kill_the_held_worker(cluster, proc, held, look=looked_at_while_held, replace=True)
    assert graph.tasks[held_task].kind == "finetune"
    assert proc.returncode == 1, first[-3000:]    # the task on the dead node failed
    assert "Rerun the same command to retry them" in first, first[-3000:]
    first_tasks = tables.read_table(layout, "tasks").set_index("task_id")
    assert first_tasks.loc[held_task, "status"] == "failed", first_tasks[["status", "device"]]
    done_before = int((first_tasks["status"] == "finished").sum())

    t2 = time.time()
    again = cli(cluster, spec, "--storage", uri)
    print(f"\nheld worker + killed run {t2 - t1:.0f} s, rerun {time.time() - t2:.0f} s")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"{done_before} already finished" in again.stdout, again.stdout[-3000:]   # kept, not recomputed
    tasks = tables.read_table(layout, "tasks")
    assert sorted(tasks["task_id"]) == sorted(graph.tasks), tasks["task_id"].tolist()   # each exactly once
    ran_on = {row.device.rsplit(":", 1)[-1] for row in tasks.itertuples()}   # cpu:<arch>:<host of the task>
    assert set(tasks["status"]) == {"finished"} and ran_on == {WORKER_HOST}, tasks[["kind", "device"]]
    assert set(tasks["kind"]) == set(vocab.TASK_KINDS)       # every kind ran on the worker
    assert worker_files(cluster, cluster.disk) == worker_disk   # the new worker's disk: as fresh as the first's
    single = one_process_tables(spec_file(cluster, "nodisk", folder="nodisk-single", **ALL_KINDS), tmp_path / "single")
    assert_same_tables(layout, single, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- no cluster needed

def test_targets_are_the_local_paths_only(tmp_path):
    from orchestrator.spec.sweep_spec import parse_spec

    data = tmp_path / "data"
    for name in CIFAR_FILES:
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_bytes(b"x" * 3)
    spec = parse_spec(f"name: t\nstorage: {tmp_path}/runs\ndata: {{dataset: cifar10, root: {data}}}\n"
                      f"mlflow: {{tracking_uri: 'sqlite:///{tmp_path}/m/mlflow.db'}}\n")
    found = {t.key: t for t in visibility.targets(spec, layout_of(spec))}
    assert found["storage"].directory == f"{tmp_path}/runs/t" and found["storage"].writable
    assert found["data.root"].files == tuple((str(data / n), 3) for n in CIFAR_FILES)
    assert found["mlflow.tracking_uri"].directory == f"{tmp_path}/m"

    remote = parse_spec("name: t\nstorage: s3://bucket/runs\nmlflow: {tracking_uri: 'http://mlflow:5000'}\n")
    on_s3 = SimpleNamespace(storage=SimpleNamespace(is_local=False), root="bucket/runs/t")   # no network here
    assert visibility.targets(remote, on_s3) == []
    builtin = parse_spec(f"name: t\nstorage: {tmp_path}/runs\ndata: {{root: {data}}}\n")   # digits reads no files
    assert [t.key for t in visibility.targets(builtin, layout_of(builtin))] == ["storage"]
    assert visibility.mlflow_store_dir("file:///srv/mlruns") == "/srv/mlruns"
    assert visibility.mlflow_store_dir("databricks") is None
    assert visibility.check_shared_paths(spec, layout_of(spec)) == []   # no Ray connected: nothing to check


def test_a_node_reports_missing_changed_and_foreign_files(tmp_path):
    (tmp_path / "a").write_bytes(b"12345")
    assert visibility._see_files([(str(tmp_path / "a"), 5)]) is None
    assert visibility._see_files([(str(tmp_path / "a"), 6), (str(tmp_path / "b"), 1)]) == \
        f"{tmp_path}/a has 5 bytes, not 6 (and 1 more of its 2 files)"
    probe = {"directory": str(tmp_path), "path": str(tmp_path / ".mmc-visibility-x"), "token": "abc", "writable": True}
    assert "another one" in visibility._see_probe(probe, "node")
    (tmp_path / ".mmc-visibility-x").write_text("abc\n")
    assert visibility._see_probe(probe, "node") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [".mmc-visibility-x", "a"]   # its own file is gone
    (tmp_path / ".mmc-visibility-x").write_text("other\n")
    assert "holds something else" in visibility._see_probe(probe, "node")
    assert visibility._see_probe({**probe, "directory": str(tmp_path / "nope")}, "node") == \
        "the directory does not exist there"
