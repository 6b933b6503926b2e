"""Does every node see the sweep's local paths (`orchestrator.run.visibility`), without a cluster: the
paths checked, what a node reports, and the check's messages and clean-up with the nodes' answers
stood in for (`_ask_every_node` replaced, or Ray's calls replaced where the asking itself is tested).
The same on a real two-node cluster: tests/orchestrator/run/test_multinode.py."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from orchestrator import knobs
from orchestrator.run import visibility
from orchestrator.run.visibility import Target
from orchestrator.spec.sweep_spec import parse_spec
from orchestrator.storage.layout import Storage, SweepLayout

MISSING = "the directory does not exist there"


def _id(prefix: str) -> str:
    """A node id as Ray gives it: 56 hex digits."""
    return (prefix + "0" * 56)[:56]


DRIVER = {"NodeID": _id("0123456789ab"), "NodeManagerAddress": "10.0.0.1", "NodeManagerHostname": "ip-10-0-0-1",
          "Alive": True}


def _worker(i: int) -> dict:
    return {"NodeID": _id(f"{i:02d}fedcba98765"), "NodeManagerAddress": f"10.0.0.{10 + i}",
            "NodeManagerHostname": f"ip-10-0-0-{10 + i}", "Alive": True}


def _blind(checks: list[dict]) -> dict:
    """A node with a disk of its own: no probe directory, no dataset file (a skipped check: nothing)."""
    return {"host": "worker-disk", "answers": [None if c.get("skip") else
                                               f"{c['files'][0][0]} is missing" if c.get("files") else MISSING
                                               for c in checks]}


def _asking(monkeypatch, answers: dict, seen: list | None = None):
    """Stand in for the probe tasks: node id -> "sees" (the node reads the driver's probes as this machine
    does), "blind", "gone" (left the cluster: None) or a string (its task failed)."""
    def ask(nodes, checks, timeout_s):
        if seen is not None:
            seen.append([dict(c) for c in checks] + [{"exists": [os.path.exists(c["path"]) for c in checks
                                                                 if c.get("path")]}])
        out = {}
        for node in nodes:
            how = answers[node["NodeID"]]
            out[node["NodeID"]] = (visibility.read_back(checks) if how == "sees" else _blind(checks) if how == "blind"
                                   else None if how == "gone" else how)
        return out
    monkeypatch.setattr(visibility, "_ask_every_node", ask)


@pytest.fixture(autouse=True)
def ray(monkeypatch):
    """A stand-in for the `ray` module (no Ray is imported or started): not connected until a test says so."""
    fake = ModuleType("ray")
    fake.is_initialized = lambda: False
    strategies = ModuleType("ray.util.scheduling_strategies")
    strategies.NodeAffinitySchedulingStrategy = lambda node_id, soft: SimpleNamespace(node_id=node_id, soft=soft)
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setitem(sys.modules, "ray.util", ModuleType("ray.util"))
    monkeypatch.setitem(sys.modules, "ray.util.scheduling_strategies", strategies)
    return fake


def _storage(directory) -> Target:
    return Target("storage", str(directory), str(directory), writable=True)


# ----- which paths

def test_a_disabled_mlflow_store_is_not_checked(tmp_path):
    """`mlflow.enabled: false`: nothing is logged there, so no node needs to see its directory."""
    spec = parse_spec(f"name: t\nstorage: {tmp_path}/runs\n"
                      f"mlflow: {{enabled: false, tracking_uri: 'sqlite:///{tmp_path}/m/mlflow.db'}}\n")
    found = visibility.targets(spec, SweepLayout(Storage(spec.storage), spec.name))
    assert [t.key for t in found] == ["storage"]


def test_an_in_memory_sqlite_store_has_no_directory():
    assert visibility.mlflow_store_dir("sqlite:///:memory:") is None
    assert visibility.mlflow_store_dir("sqlite:////srv/m/mlflow.db") == "/srv/m"


def test_a_path_under_the_home_directory_is_where_storage_puts_it():
    """`~/...` is the user's home, as `Storage` (and the datasets' loaders) read it: the check looks there."""
    assert visibility.local_path("~/mmc-runs") == Path(Storage("~/mmc-runs").root)
    assert visibility.mlflow_store_dir("~/mlruns") == str(Path.home() / "mlruns")


# ----- what a node sees

def test_a_dataset_file_larger_than_the_drivers_is_reported(tmp_path):
    """Each node must have the dataset's files with the driver's sizes: bigger is as wrong as smaller."""
    (tmp_path / "a").write_bytes(b"1234567")
    assert visibility._see_files([(str(tmp_path / "a"), 5)]) == f"{tmp_path}/a has 7 bytes, not 5"


def test_one_wrong_file_is_reported_alone(tmp_path):
    (tmp_path / "a").write_bytes(b"12345")
    assert visibility._see_files([(str(tmp_path / "a"), 5), (str(tmp_path / "b"), 3)]) == f"{tmp_path}/b is missing"


def test_only_a_writable_probe_makes_the_node_create_a_file(tmp_path):
    """`storage` (tasks write there) is also written by the node; the MLflow store's probe only read. A
    file name one byte too long for the file system stands for a directory the node cannot create in."""
    probe = tmp_path / (".mmc-visibility-" + "x" * 234)            # 250 characters; with "-<12 hex>": 263
    probe.write_text("abc\n")
    check = {"directory": str(tmp_path), "path": str(probe), "token": "abc"}
    node = _id("0123456789ab")
    assert visibility._see_probe({**check, "writable": False}, node) is None
    assert "this node cannot create files in it" in visibility._see_probe({**check, "writable": True}, node)


# ----- the check, with the nodes' answers stood in for

def test_the_probe_is_there_while_nodes_look_and_gone_afterwards_with_the_directories_made_for_it(
        tmp_path, monkeypatch):
    """Storage's probe asks the node to create a file too; the MLflow store's only to read the probe."""
    directory, store = tmp_path / "new" / "runs" / "t", tmp_path / "new" / "mlruns"
    seen = []
    _asking(monkeypatch, {DRIVER["NodeID"]: "sees", _worker(1)["NodeID"]: "sees"}, seen)
    wanted = [_storage(directory), Target("mlflow.tracking_uri", f"file://{store}", str(store))]
    problems = visibility.check_targets(wanted, [DRIVER, _worker(1)], timeout_s=5, driver_node=DRIVER["NodeID"])
    assert problems == []
    storage, mlflow, where = seen[0]                                # while the nodes looked
    assert (storage["writable"], mlflow["writable"], where) == (True, False, {"exists": [True, True]})
    assert [os.path.dirname(c["path"]) for c in (storage, mlflow)] == [str(directory), str(store)]
    assert not (tmp_path / "new").exists() and sorted(os.listdir(tmp_path)) == []


def test_a_node_that_does_not_see_storage_is_named_with_its_own_host_name_and_the_fix(tmp_path, monkeypatch):
    """`10.0.0.11 (host worker-disk, node id 01fedcba9876)`: the host name the node itself reports, the
    first 12 characters of its id; the driver's node is named too."""
    worker = _worker(1)
    _asking(monkeypatch, {DRIVER["NodeID"]: "sees", worker["NodeID"]: "blind"})
    (problem,) = visibility.check_targets([_storage(tmp_path)], [DRIVER, worker], timeout_s=5,
                                          driver_node=DRIVER["NodeID"])
    assert problem.startswith(f"`storage` must be reachable from every node of the Ray cluster, but the sweep "
                              f"directory {tmp_path}, which the driver writes on its node 10.0.0.1 (host "
                              f"ip-10-0-0-1, node id 0123456789ab), is not visible from:\n"
                              f"  - node 10.0.0.11 (host worker-disk, node id 01fedcba9876): {MISSING}\n")
    assert "Fix: give `storage` an object store" in problem
    assert sorted(os.listdir(tmp_path)) == []


def test_a_node_without_the_dataset_is_told_how_to_download_it_there(tmp_path, monkeypatch):
    """Only the files' sizes are compared: nothing is written into a dataset directory (often read-only)."""
    data = tmp_path / "data"
    data.mkdir()
    target = Target("data.root", str(data), str(data), files=((str(data / "x.bin"), 3),), dataset="cifar10")
    worker, seen = _worker(2), []
    _asking(monkeypatch, {DRIVER["NodeID"]: "sees", worker["NodeID"]: "blind"}, seen)
    (problem,) = visibility.check_targets([target], [DRIVER, worker], timeout_s=5, driver_node=DRIVER["NodeID"])
    assert seen == [[{"files": [(str(data / "x.bin"), 3)]}, {"exists": []}]] and os.listdir(data) == []
    assert f"  - node 10.0.0.12 (host worker-disk, node id 02fedcba9876): {data}/x.bin is missing\n" in problem
    assert problem.endswith(f"(`mmc-sweep data download cifar10 --root {data}`).")


def test_a_node_that_left_during_the_check_does_not_hide_the_nodes_after_it(tmp_path, monkeypatch):
    gone, blind = _worker(1), _worker(2)
    _asking(monkeypatch, {gone["NodeID"]: "gone", blind["NodeID"]: "blind", DRIVER["NodeID"]: "sees"})
    problems = visibility.check_targets([_storage(tmp_path)], [gone, blind, DRIVER], timeout_s=5,
                                        driver_node=DRIVER["NodeID"])
    assert len(problems) == 1 and "node 10.0.0.12 " in problems[0] and "node 10.0.0.11 " not in problems[0]


@pytest.mark.parametrize("blind, shown, more", [(5, 5, None), (7, 5, "  - ... and 2 more nodes")])
def test_at_most_five_nodes_are_listed_then_how_many_more(blind, shown, more, tmp_path, monkeypatch):
    workers = [_worker(i) for i in range(1, blind + 1)]
    _asking(monkeypatch, {DRIVER["NodeID"]: "sees", **{w["NodeID"]: "blind" for w in workers}})
    (problem,) = visibility.check_targets([_storage(tmp_path)], [DRIVER, *workers], timeout_s=5,
                                          driver_node=DRIVER["NodeID"])
    lines = problem.splitlines()
    assert sum(line.startswith("  - node ") for line in lines) == shown
    assert [line for line in lines if "more nodes" in line] == ([more] if more else [])


def test_a_node_whose_probe_did_not_come_back_names_the_timeout_to_raise(tmp_path, monkeypatch):
    late = _worker(3)
    _asking(monkeypatch, {DRIVER["NodeID"]: "sees", late["NodeID"]: "its probe task did not finish within 5 s"})
    (problem,) = visibility.check_targets([_storage(tmp_path)], [DRIVER, late], timeout_s=5,
                                          driver_node=DRIVER["NodeID"])
    assert problem.startswith("could not check that `storage` is reachable from every node of the Ray cluster:\n"
                              "  - node 10.0.0.13 (host ip-10-0-0-13, node id 03fedcba9876): its probe task did not "
                              "finish within 5 s\n")
    assert problem.endswith(f"raise {knobs.VISIBILITY_TIMEOUT_S.name} (now 5 s).")


# ----- which clusters are checked, and Ray's calls

def _connect(ray, nodes: list[dict]):
    ray.is_initialized = lambda: True
    ray.nodes = lambda: nodes
    ray.get_runtime_context = lambda: SimpleNamespace(get_node_id=lambda: DRIVER["NodeID"])


def test_only_clusters_of_two_alive_nodes_or_more_are_checked_within_the_visibility_timeout(tmp_path, monkeypatch,
                                                                                             ray):
    spec = parse_spec(f"name: t\nstorage: {tmp_path}/runs\n")
    layout = SweepLayout(Storage(spec.storage), spec.name)
    calls = []
    monkeypatch.setattr(visibility, "check_targets", lambda wanted, nodes, **kw: calls.append((nodes, kw)) or [])
    monkeypatch.setenv(knobs.VISIBILITY_TIMEOUT_S.name, "7")
    monkeypatch.setenv(knobs.CONNECT_TIMEOUT_S.name, "3")
    dead = {**_worker(1), "Alive": False}
    _connect(ray, [DRIVER, dead])
    assert visibility.check_shared_paths(spec, layout) == [] and calls == []      # one node alive: one disk
    _connect(ray, [DRIVER, dead, _worker(2)])
    visibility.check_shared_paths(spec, layout)
    assert calls == [([DRIVER, _worker(2)], {"timeout_s": 7.0, "driver_node": DRIVER["NodeID"]})]


def test_a_probe_that_did_not_finish_counts_only_while_its_node_is_alive(ray):
    """A node that timed out but left the cluster meanwhile has nothing to check (None); one still alive is
    reported with the timeout; one that answered gives its answer."""
    answered, late, left = _worker(1), _worker(2), _worker(3)

    class Probe:
        def options(self, **kw):
            node = kw["scheduling_strategy"].node_id
            return SimpleNamespace(remote=lambda checks: f"ref-{node}")

    ray.remote = lambda fn: Probe()
    ray.wait = lambda refs, num_returns, timeout: ([f"ref-{answered['NodeID']}"], [])
    ray.get = lambda ref: {"host": "w1", "answers": [None]}
    ray.cancel = lambda ref, force: None
    ray.nodes = lambda: [answered, late, {**left, "Alive": False}]
    answers = visibility._ask_every_node([answered, late, left], [{"skip": True}], 5)
    assert answers == {answered["NodeID"]: {"host": "w1", "answers": [None]},
                       late["NodeID"]: "its probe task did not finish within 5 s", left["NodeID"]: None}


# ----- more of which paths, what a node reports, and how it is asked

def test_local_storage_is_checked_as_the_sweep_directory_that_nodes_write_into_and_a_datasets_files_with_sizes(
        tmp_path):
    """`storage` is probed in the sweep directory `<storage>/<name>` (where tasks write: the node must also
    create a file there); a dataset that reads files gets a read-only check of each file with the driver's
    size; the built-in `digits` reads none and gets no check."""
    import tasks.datasets

    data = tmp_path / "data" / tasks.datasets.CIFAR100_DIR
    data.mkdir(parents=True)
    (data / "train").write_bytes(b"123")
    (data / "test").write_bytes(b"4567")
    spec = parse_spec(f"name: t\nstorage: {tmp_path}/runs\ndata: {{dataset: cifar100, root: {tmp_path}/data}}\n")
    storage, dataset = visibility.targets(spec, SweepLayout(Storage(spec.storage), spec.name))
    assert (storage.key, storage.directory, storage.writable, storage.files) == (
        "storage", str(tmp_path / "runs" / "t"), True, ())
    assert (dataset.key, dataset.directory, dataset.writable, dataset.dataset) == (
        "data.root", str(tmp_path / "data"), False, "cifar100")
    assert sorted(dataset.files) == [(str(data / "test"), 4), (str(data / "train"), 3)]
    digits = parse_spec(f"name: t\nstorage: {tmp_path}/runs\ndata: {{dataset: digits, root: {tmp_path}/data}}\n")
    assert [t.key for t in visibility.targets(digits, SweepLayout(Storage(digits.storage), digits.name))] == ["storage"]


def test_a_tracking_server_or_databricks_has_no_local_directory_to_check():
    """Databricks (`databricks`, `databricks-uc`, `uc`) and http(s) servers are reached over the network; an
    in-memory SQLite store, query string or not, lives nowhere on disk."""
    for uri in ("databricks", "databricks-uc", "uc", "http://mlflow:5000", "https://mlflow.example"):
        assert visibility.mlflow_store_dir(uri) is None, uri
    assert visibility.mlflow_store_dir("sqlite:///:memory:?cache=shared") is None
    assert visibility.mlflow_store_dir("sqlite:////srv/m/mlflow.db?timeout=30") == "/srv/m"


def test_several_wrong_dataset_files_name_the_first_and_count_the_others(tmp_path):
    """Three files, two wrong: the first wrong one is named, then `(and 1 more of its 3 files)`."""
    (tmp_path / "a").write_bytes(b"12345")
    (tmp_path / "c").write_bytes(b"12")
    files = [(str(tmp_path / "a"), 5), (str(tmp_path / "b"), 3), (str(tmp_path / "c"), 3)]
    assert visibility._see_files(files) == f"{tmp_path}/b is missing (and 1 more of its 3 files)"


def test_a_probe_the_driver_cannot_write_leaves_the_other_paths_checks_in_their_place(tmp_path, monkeypatch):
    """The MLflow store's directory lies under a file (no probe can be written there): that is reported, and
    `storage`, checked after it, is still judged by its own answers (a node that does not see it is named
    under `storage`, not under the MLflow store's key)."""
    (tmp_path / "file").write_text("x")
    store = tmp_path / "file" / "mlruns"
    worker = _worker(1)
    _asking(monkeypatch, {DRIVER["NodeID"]: "sees", worker["NodeID"]: "blind"})
    wanted = [Target("mlflow.tracking_uri", f"file://{store}", str(store)), _storage(tmp_path / "runs")]
    cannot, storage = visibility.check_targets(wanted, [DRIVER, worker], timeout_s=5, driver_node=DRIVER["NodeID"])
    assert cannot.startswith(f"`mlflow.tracking_uri`: cannot write a probe file into {store} on the driver's node")
    assert storage.startswith("`storage` must be reachable from every node") and "node 10.0.0.11 " in storage


def test_every_node_gets_a_zero_cpu_probe_pinned_to_it_and_all_are_awaited_within_the_timeout(ray):
    """A probe takes no CPU (it runs on a busy cluster at once), is hard-pinned to its node (a soft affinity could
    run it elsewhere and report another disk), and the check waits for every node's probe, up to the timeout."""
    nodes, options, waited = [_worker(1), _worker(2), _worker(3)], [], []

    class Probe:
        def options(self, **kw):
            options.append(kw)
            return SimpleNamespace(remote=lambda checks: f"ref-{kw['scheduling_strategy'].node_id}")

    ray.remote = lambda fn: Probe()
    ray.wait = lambda refs, num_returns, timeout: waited.append((list(refs), num_returns, timeout)) or (list(refs), [])
    ray.get = lambda ref: {"host": "w", "answers": []}
    answers = visibility._ask_every_node(nodes, [], 7)
    assert [(o["num_cpus"], o["scheduling_strategy"].node_id, o["scheduling_strategy"].soft) for o in options] == [
        (0, n["NodeID"], False) for n in nodes]
    assert waited == [([f"ref-{n['NodeID']}" for n in nodes], 3, 7)]
    assert answers == {n["NodeID"]: {"host": "w", "answers": []} for n in nodes}


def test_a_node_where_the_directory_is_a_file_does_not_have_the_directory(tmp_path):
    """A file at the path of the directory on a node is no directory there: reported as such, not as a probe
    file that cannot be read."""
    (tmp_path / "runs").write_text("not a directory")
    check = {"directory": str(tmp_path / "runs"), "path": str(tmp_path / "runs" / ".mmc-visibility-0123"),
             "token": "abc", "writable": False}
    assert visibility.read_back([check])["answers"] == [MISSING]


@pytest.mark.parametrize("content", ["", "\n", "ab\n", "abcd\n"])
def test_a_probe_file_that_does_not_hold_the_whole_token_is_not_the_drivers(tmp_path, content):
    """The node must read back exactly the driver's token: an empty or cut-short file (a stale cache, a
    copy being written) or a longer one is another file, not proof that the node sees the directory."""
    probe = tmp_path / ".mmc-visibility-0123"
    probe.write_text(content)
    check = {"directory": str(tmp_path), "path": str(probe), "token": "abc", "writable": False}
    assert visibility.read_back([check])["answers"] == [
        "the driver's probe file there holds something else (another directory or a stale cache)"]
    probe.write_text("abc\n")
    assert visibility.read_back([check])["answers"] == [None]
