"""The checks before any work (`orchestrator.run.preflight`), by hand and without a cluster or a server:
what a cluster's resources allow (boundaries included), the bounded wait for nodes (a fake clock), the
endpoints' checks (the connections stood in for), an object store's refusals (a stand-in file system),
and what the cluster check refuses. The same through the CLI: tests/orchestrator/test_cli_errors.py."""
from __future__ import annotations

import http.client
import socket
from pathlib import Path
from types import SimpleNamespace

import pyarrow.fs as pafs
import pytest

from orchestrator import knobs
from orchestrator.errors import SweepError
from orchestrator.run import preflight, visibility
from orchestrator.run.capacity import AutoscalerStatus, ClusterView
from orchestrator.spec.sweep_spec import parse_spec
from orchestrator.storage.layout import Storage, SweepLayout
from tests.support.clock import FakeClock

HEAD = {"CPU": 2.0, "memory": 1e9, "node:__internal_head__": 1.0}
GPU_NODE = {"CPU": 1.0, "GPU": 1.0}


def _spec(text: str = ""):
    return parse_spec("name: x\n" + text)


# ----- what the cluster's resources allow

def test_a_worker_fits_on_the_largest_node_though_the_other_nodes_are_smaller():
    """8 CPUs and 2 GPUs per worker: only the second node has them, which is enough."""
    spec = _spec("resources: {pretrain: {cpus: 8, gpus: 2}}\n")
    cluster = {"CPU": 10, "GPU": 3, "nodes": [{"CPU": 2, "GPU": 1}, {"CPU": 8, "GPU": 2}]}
    assert preflight.check_resources(spec, cluster, ["pretrain"]) == []


def test_resources_exactly_as_large_as_the_cluster_fit():
    """2 workers x (4 CPUs, 1 GPU, 1 accel) on two nodes of exactly that, and the trainer's 0.01 CPU on a
    third: 8.01 CPUs, 2 GPUs, 2 accel."""
    spec = _spec("resources: {pretrain: {cpus: 4, gpus: 1, workers: 2, custom: {accel: 1}}}\n")
    cluster = {"CPU": 8.01, "GPU": 2, "accel": 2,
               "nodes": [{"CPU": 4, "GPU": 1, "accel": 1}] * 2 + [{"CPU": 0.01}]}
    assert preflight.check_resources(spec, cluster, ["pretrain"]) == []


def test_workers_that_ask_for_every_cpu_leave_none_for_their_trainer_and_are_refused():
    """2 workers x 1 CPU on one node of 2 CPUs: the task's trial (which drives the workers) holds 0.01 CPU
    too, so the workers' placement group would wait forever. Refused naming what it needs, what the node
    has and what to change; 0.5 CPUs per worker fit."""
    spec = _spec("resources: {pretrain: {workers: 2}}\n")
    node = {"CPU": 2.0, "memory": 1e9, "node:__internal_head__": 1.0}
    assert preflight.check_resources(spec, {"CPU": 2.0, "nodes": [node]}, ["pretrain"]) == [
        "`resources.pretrain`: 2 workers x 1 cpus + 0.01 for the trainer = 2.01 cpus but the cluster has 2 (its "
        "largest node 2); use fewer workers, at most 0.995 cpus per worker, or a bigger node"]
    assert preflight.check_resources(_spec("resources: {pretrain: {workers: 2, cpus: 0.5}}\n"),
                                     {"CPU": 2.0, "nodes": [node]}, ["pretrain"]) == []


def test_the_refusal_of_workers_that_fill_the_cluster_ends_the_run_with_exit_2(monkeypatch):
    """`check_cluster` as the run calls it: a SweepError (exit 2) naming the task kind and the trainer."""
    monkeypatch.setattr(visibility, "check_shared_paths", lambda spec, layout: [])
    with pytest.raises(SweepError) as caught:
        preflight.check_cluster(_spec("resources: {finetune: {workers: 2}}\n"), None,
                                {"CPU": 2.0, "nodes": [{"CPU": 2.0}]}, ["finetune"])
    assert str(caught.value).startswith("the cluster cannot run this sweep:\n  - `resources.finetune`: 2 workers x 1 "
                                        "cpus + 0.01 for the trainer = 2.01 cpus")


def test_bundles_that_fit_the_clusters_totals_but_not_its_nodes_are_refused():
    """3 workers x 1.5 CPUs (4.51 with the trainer) on 3 nodes of 2 CPUs: 6 CPUs in all, one worker per node,
    fits; on 2 nodes of 2.5 CPUs (5 in all) only 2 workers find a node."""
    spec = _spec("pretrain: {batch_size: 126}\nresources: {pretrain: {cpus: 1.5, workers: 3}}\n")
    assert preflight.check_resources(spec, {"CPU": 6.0, "nodes": [{"CPU": 2.0}] * 3}, ["pretrain"]) == []
    assert preflight.check_resources(spec, {"CPU": 5.0, "nodes": [{"CPU": 2.5}] * 2}, ["pretrain"]) == [
        "`resources.pretrain`: 3 workers x {CPU 1.5} + {CPU 0.01} for the trainer do not fit on the nodes, each "
        "bundle whole on one node (nodes: 2 x {CPU 2.5}); use fewer workers, fewer cpus or gpus per worker, or "
        "bigger nodes"]


def test_gpu_workers_need_their_cpus_on_the_node_of_their_gpu_and_the_trainer_a_cpu_somewhere():
    """2 workers x (1 CPU, 1 GPU) on two GPU nodes of 1 CPU each: no CPU is left for the trainer (refused);
    with a head of 1 CPU it goes there. A single worker of (4 CPUs, 1 GPU) on a CPU node of 8 and a GPU node of
    1 CPU: each resource is somewhere, but no node has both."""
    spec = _spec("resources: {pretrain: {cpus: 1, gpus: 1, workers: 2}, finetune: {cpus: 4, gpus: 1}}\n")
    gpu_nodes = [{"CPU": 1.0, "GPU": 1.0}] * 2
    assert preflight.check_resources(spec, {"CPU": 2.0, "GPU": 2.0, "nodes": gpu_nodes}, ["pretrain"]) == [
        "`resources.pretrain`: 2 workers x 1 cpus + 0.01 for the trainer = 2.01 cpus but the cluster has 2 (its "
        "largest node 1); use fewer workers, fewer cpus per worker, or a bigger node"]   # 0.995 leaves 0.005 a node
    with_head = {"CPU": 3.0, "GPU": 2.0, "nodes": [{"CPU": 1.0}, *gpu_nodes]}
    assert preflight.check_resources(spec, with_head, ["pretrain"]) == []
    split = {"CPU": 9.0, "GPU": 1.0, "nodes": [{"CPU": 8.0}, {"CPU": 1.0, "GPU": 1.0}]}
    assert preflight.check_resources(spec, split, ["finetune"]) == [
        "`resources.finetune`: a worker of {CPU 4, GPU 1} fits on no node (nodes: 1 x {CPU 8, GPU 0}, 1 x {CPU 1, "
        "GPU 1}); use fewer cpus or gpus, or a bigger node"]


def test_the_check_and_the_requests_read_one_definition_of_a_tasks_bundles(monkeypatch):
    """`schedule.trial_resources` is the first of `capacity.task_bundles`, Ray Train's workers the rest, placed
    as `capacity.WORKER_PLACEMENT` says: what the preflight checks is what the task asks for."""
    from orchestrator.graph.dag import Resources, Task
    from orchestrator.run import capacity, schedule

    ddp = Task("pretrain", {"x": 1}, (), {}, Resources(cpus=2, gpus=1, workers=3))
    assert capacity.task_bundles("pretrain", ddp.resources) == [{"CPU": 0.01}] + [{"CPU": 2, "GPU": 1}] * 3
    assert schedule.trial_resources(ddp) == {"cpu": 0.01}
    single = Task("pretrain", {"x": 1}, (), {}, Resources(cpus=2, gpus=1))
    assert capacity.task_bundles("pretrain", single.resources) == [{"CPU": 2, "GPU": 1}]
    assert schedule.trial_resources(single) == {"cpu": 2, "gpu": 1}
    assert capacity.WORKER_PLACEMENT == "PACK"     # soft: the check may place workers on several nodes


def test_every_worker_of_a_task_counts_against_the_cluster():
    """4 workers x (2 CPUs, 1 GPU, 1 accel) = 8 CPUs, 4 GPUs, 4 accel, on a cluster of 6 CPUs, 3 GPUs, 3 accel
    (each node holds one worker)."""
    spec = _spec("resources: {pretrain: {cpus: 2, gpus: 1, workers: 4, custom: {accel: 1}}}\n")
    cluster = {"CPU": 6, "GPU": 3, "accel": 3, "nodes": [{"CPU": 2, "GPU": 1, "accel": 1}] * 3}
    assert preflight.check_resources(spec, cluster, ["pretrain"]) == [
        "`resources.pretrain`: 4 workers x 2 cpus + 0.01 for the trainer = 8.01 cpus but the cluster has 6 (its "
        "largest node 2); use fewer workers, fewer cpus per worker, or a bigger node",
        "`resources.pretrain`: 4 workers x 1 gpus = 4 but the cluster has 3; use fewer workers or gpus",
        "`resources.pretrain.custom.accel`: 4 workers x 1 but the cluster has 3 of `accel`; start nodes with that "
        "resource or remove it"]


def test_a_worker_larger_than_every_node_is_named_once_for_that_resource():
    """5 CPUs per worker on nodes of 4: the node size is the problem (the total, 10 > 8, follows from it)."""
    spec = _spec("resources: {pretrain: {cpus: 5, workers: 2}}\n")
    cluster = {"CPU": 8, "nodes": [{"CPU": 4}] * 2}
    assert preflight.check_resources(spec, cluster, ["pretrain"]) == [
        "`resources.pretrain.cpus`: 5 per worker but the largest node has 4; use at most 4"]


def test_gpus_on_a_cluster_without_gpus_are_one_problem():
    spec = _spec("resources: {finetune: {cpus: 1, gpus: 1}}\n")
    assert preflight.check_resources(spec, {"CPU": 4, "nodes": [{"CPU": 4}]}, ["finetune"]) == [
        "`resources.finetune.gpus`: 1 but the cluster has no GPU; set `resources.finetune.gpus: 0` to run on CPUs"]


# ----- the cluster check

def test_nodes_that_do_not_see_the_sweeps_paths_refuse_the_run(tmp_path, monkeypatch):
    """The resources fit, but a node does not see `storage`: refused with every problem the check found."""
    monkeypatch.setattr(visibility, "check_shared_paths", lambda spec, layout: ["storage: node b", "data.root: node c"])
    with pytest.raises(SweepError) as caught:
        preflight.check_cluster(_spec(), None, {"CPU": 8}, ["pretrain"])
    assert str(caught.value) == "storage: node b\n\ndata.root: node c"


def test_local_paths_on_a_cluster_that_grows_later_are_said_in_a_warning(tmp_path, monkeypatch, caplog):
    """A cluster that scales from zero has only its head at the check, which cannot look at nodes started
    later: local `storage` (or `data.root`, a local MLflow store) is said once, naming what to mount or use;
    an object store, or a cluster that does not grow, says nothing."""
    monkeypatch.setattr(visibility, "check_shared_paths", lambda spec, layout: [])
    layout = SweepLayout(Storage(str(tmp_path / "runs")), "x")
    spec = _spec(f"storage: {tmp_path / 'runs'}\nmlflow: {{enabled: false}}\n")
    with caplog.at_level("WARNING", logger="orchestrator.run.preflight"):
        preflight.check_cluster(spec, layout, {"CPU": 8}, ["pretrain"], grows=True)
        said = [r.getMessage() for r in caplog.records]
        assert len(said) == 1 and said[0].startswith(f"`storage` ({tmp_path / 'runs'}) is a path on this node's disk")
        assert "every node it starts must mount the same path" in said[0] and "s3://" in said[0]
        caplog.clear()
        preflight.check_cluster(spec, layout, {"CPU": 8}, ["pretrain"], grows=False)
        assert caplog.records == []


# ----- the wait for nodes (a fake clock)

def _wait(spec, views, kinds, wait_s=600.0, ask=None, counts=None):
    """`wait_for_cluster` over `views` (the last repeats): (result or SweepError, what it said, when it read)."""
    clock, said, reads = FakeClock(), [], []

    def read():
        reads.append(clock.now)
        return views[min(len(reads) - 1, len(views) - 1)]

    try:
        result = preflight.wait_for_cluster(spec, kinds, read, wait_s=wait_s, counts=counts, ask=ask,
                                            log=said.append, sleep=clock.sleep, clock=clock)
    except SweepError as exc:
        result = exc
    return result, said, reads


def _joining() -> ClusterView:
    """The head, and a GPU node listed whose resources do not count yet (still joining)."""
    return ClusterView((HEAD, GPU_NODE), {"CPU": 2.0, "memory": 1e9})


def test_a_node_that_never_joins_is_waited_for_exactly_the_limit_reading_every_second_saying_every_15_s():
    """docs/FAILURES.md: re-read every second, say every 15 s what it waits for, at most --wait-for-nodes."""
    spec = _spec("resources: {pretrain: {cpus: 1, gpus: 1}}\n")
    error, said, reads = _wait(spec, [_joining()], ["pretrain"], wait_s=40)
    assert isinstance(error, SweepError)
    assert reads == [float(s) for s in range(41)]
    assert [line.split(";")[0] for line in said] == ["waiting for nodes (0 of at most 40 s",
                                                     "waiting for nodes (15 of at most 40 s",
                                                     "waiting for nodes (30 of at most 40 s"]
    assert str(error).startswith("the cluster cannot run this sweep (waited 40 s for nodes; --wait-for-nodes 40):")


def test_a_one_second_wait_says_it_waited():
    spec = _spec("resources: {pretrain: {cpus: 1, gpus: 1}}\n")
    error, _, reads = _wait(spec, [_joining()], ["pretrain"], wait_s=1)
    assert reads == [0.0, 1.0]
    assert str(error).startswith("the cluster cannot run this sweep (waited 1 s for nodes; --wait-for-nodes 1):")


def test_an_autoscaler_of_unknown_node_types_gets_60_s_for_a_node_and_is_asked_only_for_what_is_missing():
    """docs/FAILURES.md: asked once for one task of each missing kind, then given 60 s. The CPU kinds fit on
    the head now: only pretraining's GPU worker is asked for."""
    spec = _spec("resources: {pretrain: {cpus: 1, gpus: 1}}\n")
    idle = ClusterView((HEAD,), dict(HEAD), None, AutoscalerStatus(active={"head": 1}))
    asked = []
    error, said, reads = _wait(spec, [idle], ["pretrain", "finetune", "path_eval"], ask=asked.append)
    assert isinstance(error, SweepError) and reads[-1] == 60.0
    assert asked == [[{"CPU": 1.0, "GPU": 1.0}]]


def test_a_cluster_without_an_autoscaler_is_not_asked_for_nodes_and_refused_at_once():
    """Nothing on its way and nobody to ask: the refusal comes at once (docs/FAILURES.md)."""
    spec = _spec("resources: {pretrain: {cpus: 1, gpus: 1}}\n")
    fixed = ClusterView((HEAD,), dict(HEAD))
    asked = []
    error, said, reads = _wait(spec, [fixed], ["pretrain"], ask=asked.append)
    assert isinstance(error, SweepError) and reads == [0.0] and asked == [] and said == []


def _growing(max_workers: int = 4) -> ClusterView:
    from orchestrator.run.node_types import NodeType, NodeTypes

    types = NodeTypes((NodeType("head", (("CPU", 2.0),), head=True),
                       NodeType("gpu_worker", (("CPU", 1.0), ("GPU", 1.0)), max_workers=max_workers)), "c.yaml")
    return ClusterView((HEAD,), dict(HEAD), types, AutoscalerStatus(active={"head": 1}))


def test_the_growth_plan_asks_for_no_more_at_once_than_max_concurrent():
    """4 GPU nodes could start; max_concurrent 1 keeps one pretraining in flight."""
    spec = _spec("max_concurrent: 1\nresources: {pretrain: {cpus: 1, gpus: 1}}\n")
    view, said, _ = _wait(spec, [_growing()], ["pretrain"])
    assert isinstance(view, ClusterView) and "The sweep asks it for pretrain: up to 1 at once x {CPU 1, GPU 1}." in said[0]


def test_the_growth_plan_asks_for_no_more_at_once_than_the_tasks_left():
    """4 GPU nodes could start but 3 pretrainings are left; the kinds without a count get what fits."""
    spec = _spec("resources: {pretrain: {cpus: 1, gpus: 1}, finetune: {cpus: 1, gpus: 1}}\n")
    view, said, _ = _wait(spec, [_growing()], ["pretrain", "finetune"], counts={"pretrain": 3})
    assert isinstance(view, ClusterView)
    assert "pretrain: up to 3 at once x {CPU 1, GPU 1}; finetune: up to 4 at once x {CPU 1, GPU 1}." in said[0]


def test_the_growth_plan_asks_for_no_more_than_fits_whatever_max_concurrent_and_the_tasks_left_allow():
    """max_concurrent and the tasks left only ever lower the ask: with 10 of each allowed, 4 GPU nodes can
    start, so 4 at once."""
    spec = _spec("max_concurrent: 10\nresources: {pretrain: {cpus: 1, gpus: 1}}\n")
    view, said, _ = _wait(spec, [_growing()], ["pretrain"], counts={"pretrain": 10})
    assert isinstance(view, ClusterView) and "The sweep asks it for pretrain: up to 4 at once x {CPU 1, GPU 1}." in said[0]


# ----- endpoints (the connections stood in for)

class Conn:
    """An http.client connection that records what it was asked and answers 200."""
    made: list = []

    def __init__(self, host, port, timeout, context=None):
        self.host, self.port, self.sock, self.asked, self.read = host, port, None, None, False
        Conn.made.append(self)

    def connect(self):
        self.sock = SimpleNamespace(settimeout=lambda s: None)

    def request(self, method, path, headers=None):
        self.asked = (method, path)

    def getresponse(self):
        return SimpleNamespace(read=lambda n: setattr(self, "read", True) or b"ok")

    def close(self):
        pass


@pytest.fixture
def http_conn(monkeypatch):
    Conn.made = []
    monkeypatch.setattr(http.client, "HTTPConnection", Conn)
    monkeypatch.setattr(http.client, "HTTPSConnection", Conn)
    return Conn.made


def test_an_https_tracking_server_is_asked_for_its_health_on_port_443(http_conn):
    preflight.check_tracking_server("https://mlflow.example.org/team/")
    (conn,) = http_conn
    assert (conn.host, conn.port, conn.asked, conn.read) == ("mlflow.example.org", 443, ("GET", "/team/health"), True)


def test_a_ray_dashboard_address_is_refused_at_once_naming_the_address_a_run_takes(http_conn, monkeypatch):
    """ray.init refuses a dashboard's http:// address (its message then cut to "To fix this, either:"): one
    line at once, naming host:6379 or auto, and cluster/submit.sh for the dashboard; nothing is asked."""
    monkeypatch.setenv("RAY_ADDRESS", "http://10.0.0.1:8265")
    with pytest.raises(SweepError, match=r"^\$RAY_ADDRESS 'http://10.0.0.1:8265' is a Ray dashboard's address .*"
                                         r"host:6379 .* cluster/submit.sh SPEC$"):
        preflight.check_ray_address("http://10.0.0.1:8265")
    assert http_conn == []


def test_a_tracking_uri_without_a_host_is_refused():
    with pytest.raises(SweepError, match=r"'http:///mlflow' names no host; give e.g. http://127.0.0.1:5000"):
        preflight.check_tracking_server("http:///mlflow")


class Sock:
    """A connected socket whose peer sends `answer` (in pieces of at most `piece` bytes), then closes."""

    def __init__(self, answer: bytes, piece: int = 4):
        self.answer, self.piece, self.sent = answer, piece, b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def settimeout(self, seconds):
        pass

    def sendall(self, data):
        self.sent += data

    def recv(self, size):
        out, self.answer = self.answer[:min(size, self.piece)], self.answer[min(size, self.piece):]
        return out


@pytest.fixture
def connections(monkeypatch):
    """socket.create_connection stood in for: records the addresses; answers with `connections.answer`."""
    made = SimpleNamespace(addresses=[], answer=b"", socks=[])

    def connect(address, timeout=None):
        made.addresses.append(address)
        made.socks.append(Sock(made.answer))
        return made.socks[-1]
    monkeypatch.setattr(socket, "create_connection", connect)
    monkeypatch.delenv("RAY_USE_TLS", raising=False)
    monkeypatch.setenv(knobs.CONNECT_TIMEOUT_S.name, "3")
    return made


@pytest.mark.parametrize("uri, address", [
    ("postgresql+psycopg2://u@db.example/mlflow", ("db.example", 5432)),
    ("postgresql://u@db.example:6543/mlflow", ("db.example", 6543)),
    ("mysql+pymysql://u@db.example/mlflow", ("db.example", 3306)),
    ("mssql+pyodbc://u@db.example/mlflow", ("db.example", 1433)),
])
def test_a_tracking_database_is_reached_at_its_dialects_default_port(uri, address, connections):
    """The standard ports: PostgreSQL 5432, MySQL 3306, SQL Server 1433 (a `+driver` names the same dialect)."""
    preflight.check_tracking_server(uri)
    assert connections.addresses == [address]


SETTINGS = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00" + b"\x00\x03\x00\x00\x00\x64"   # a server's first SETTINGS frame


def test_a_grpc_server_answering_the_http2_preface_with_settings_passes(connections):
    """An HTTP/2 frame header: 3 bytes of length, the type (4: SETTINGS), flags (0), the stream id."""
    connections.answer = SETTINGS
    preflight.check_ray_address("10.0.0.1:6379")
    assert connections.addresses == [("10.0.0.1", 6379)]
    assert connections.socks[0].sent.startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")


def test_a_peer_that_closes_within_the_frame_header_is_not_ray(connections):
    connections.answer = SETTINGS[:5]
    with pytest.raises(SweepError, match=r"no Ray cluster answers within 3 s \(closed without a gRPC answer\)"):
        preflight.check_ray_address("10.0.0.1:6379")


def test_an_address_of_a_host_starting_with_l_is_checked(connections):
    connections.answer = b"HTTP/1.1 400 Bad Request\r\n\r\n"
    with pytest.raises(SweepError, match="not a gRPC"):
        preflight.check_ray_address("lab-head:6379")


@pytest.mark.parametrize("address", ["localhost:6379", "localhost:1", "127.0.0.1:10001"])
def test_an_address_on_localhost_is_checked_like_any_other(connections, address):
    """Only `auto` and `local` are Ray's to resolve; `localhost:PORT` is an explicit host:port, so a
    port that does not answer as Ray is refused at once instead of Ray retrying for minutes."""
    connections.answer = b"HTTP/1.1 400 Bad Request\r\n\r\n"
    with pytest.raises(SweepError, match="not a gRPC"):
        preflight.check_ray_address(address)


@pytest.mark.parametrize("address", ["auto", "local", None, ""])
def test_auto_and_local_are_left_to_ray(connections, address):
    preflight.check_ray_address(address)
    assert connections.addresses == []


# ----- an object store's refusals (a stand-in file system)

def test_a_storage_uri_with_credentials_names_the_bucket_alone():
    """`s3://KEY:SECRET@bucket/runs`: the bucket is what follows the credentials, never the credentials."""
    problem = preflight.object_store_problem("s3://AKIAFAKE:s3cr3t@my-bucket/runs", OSError("NoSuchBucket"))
    assert "bucket `my-bucket` does not exist" in problem and "s3cr3t" not in problem


@pytest.mark.parametrize("code", ["ACCESS_DENIED", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                                  "PERMISSION_DENIED", "UNAUTHENTICATED"])
def test_every_refusal_of_credentials_is_told_as_such(code):
    problem = preflight.object_store_problem("gs://b/runs", OSError(f"When listing: {code} (request id 1)"))
    assert problem.startswith("the object store refused the credentials (access denied to bucket `b`)")


class StoreFS:
    """An object store's file system: whether the bucket exists, and what a LIST does."""

    def __init__(self, bucket_exists: bool, listing_error: str | None = None):
        self.bucket_exists, self.listing_error, self.listed = bucket_exists, listing_error, []

    def get_file_info(self, what):
        if isinstance(what, pafs.FileSelector):
            self.listed.append(what.base_dir)
            if self.listing_error:
                raise OSError(self.listing_error)
            return []
        return SimpleNamespace(type=pafs.FileType.Directory if self.bucket_exists else pafs.FileType.NotFound)


def _bucket_layout(fs) -> SimpleNamespace:
    storage = SimpleNamespace(fs=fs, root="bucket/runs/x", base_uri="gs://bucket/runs", shown=lambda p: f"gs://{p}")
    return SimpleNamespace(storage=storage)


def test_an_existing_bucket_is_listed_once_and_passes():
    fs = StoreFS(bucket_exists=True)
    preflight._check_bucket(_bucket_layout(fs))
    assert fs.listed == ["bucket/runs/x"]


def test_a_bucket_that_exists_but_refuses_the_listing_is_a_credentials_problem():
    with pytest.raises(SweepError, match=r"gs://bucket/runs/x: the object store refused the credentials"):
        preflight._check_bucket(_bucket_layout(StoreFS(bucket_exists=True, listing_error="AccessDenied")))


def test_a_missing_bucket_is_named():
    with pytest.raises(SweepError, match="bucket `bucket` does not exist; create it"):
        preflight._check_bucket(_bucket_layout(StoreFS(bucket_exists=False)))


def test_an_answer_no_rule_names_is_one_clear_refusal_not_a_traceback():
    """A 5xx, or a redirect to another region: the store's own words, its first line, and what to check."""
    error = "When getting information for bucket 'bucket': AWS Error UNKNOWN (HTTP status 500) during HeadBucket\nmore"
    with pytest.raises(SweepError, match=r"gs://bucket/runs/x: the object store refused to list the bucket \(When "
                                         r"getting information .*HTTP status 500\) during HeadBucket\); check") as refused:
        preflight._check_bucket(_bucket_layout(StoreFS(bucket_exists=True, listing_error=error)))
    assert "more" not in str(refused.value)


# ----- the stored spec

def test_a_stored_spec_that_is_a_directory_is_to_be_moved_away_not_replaced(tmp_path):
    """--new-version replaces only a regular file: for a directory the fix is to move it away."""
    layout = SweepLayout(Storage(tmp_path), "x")
    Path(layout.spec_file()).mkdir(parents=True)
    with pytest.raises(SweepError) as caught:
        preflight.stored_spec(layout)
    assert str(caught.value) == (f"the stored spec {layout.spec_file()} is not a regular file (a directory, FIFO or "
                                 "device); move it away (finished tasks are kept), or use another sweep `name`")


# ----- data

def test_at_most_six_missing_dataset_files_are_listed_then_how_many_more(tmp_path, monkeypatch):
    import tasks.datasets

    missing = [tmp_path / f"f{i}" for i in range(8)]
    monkeypatch.setattr(tasks.datasets, "missing_files", lambda dataset, root: missing)
    spec = _spec(f"data: {{dataset: cifar10, root: {tmp_path}}}\n")
    with pytest.raises(SweepError) as caught:
        preflight.check_data(spec)
    listed = [line for line in str(caught.value).splitlines() if line.startswith("  - ")]
    assert listed == [f"  - {p}" for p in missing[:6]]
    assert "\n  ... and 2 more\n" in str(caught.value)


# ----- more of the checks: what they leave behind, the endpoints' defaults, an object store's answers

def test_the_storage_check_creates_and_then_removes_every_missing_directory_up_to_the_sweep(tmp_path):
    """`storage: <tmp>/a/b` with sweep `x`: a, a/b and a/b/x are new, outermost first; the check writes its probe
    there and leaves none of them behind (each removed innermost first, so each is empty when removed)."""
    layout = SweepLayout(Storage(tmp_path / "a" / "b"), "x")
    assert preflight.new_directories(layout) == [str(tmp_path / "a"), str(tmp_path / "a" / "b"),
                                                 str(tmp_path / "a" / "b" / "x")]
    preflight.check_storage(layout)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("n, more", [(6, None), (7, "  ... and 1 more")])
def test_six_missing_dataset_files_are_all_listed_and_a_seventh_is_counted(tmp_path, monkeypatch, n, more):
    """Up to six missing files are listed, nothing more said; from the seventh on, `... and N more`."""
    import tasks.datasets

    missing = [tmp_path / f"f{i}" for i in range(n)]
    monkeypatch.setattr(tasks.datasets, "missing_files", lambda dataset, root: missing)
    with pytest.raises(SweepError) as caught:
        preflight.check_data(_spec(f"data: {{dataset: cifar10, root: {tmp_path}}}\n"))
    lines = str(caught.value).splitlines()
    assert [line for line in lines if line.startswith("  - ")] == [f"  - {p}" for p in missing[:6]]
    assert [line for line in lines if "more" in line] == ([more] if more else [])


@pytest.mark.parametrize("n, more", [(20, None), (21, "  ... and 1 more")])
def test_twenty_changed_settings_are_all_listed_and_a_twenty_first_is_counted(tmp_path, monkeypatch, n, more):
    changes = [f"seeds[{i}]: {i} -> {i + 1}" for i in range(n)]
    monkeypatch.setattr(preflight, "stored_spec", lambda layout: {"name": "x"})
    monkeypatch.setattr(preflight.spec_lib, "differences", lambda old, new: changes)
    with pytest.raises(SweepError) as caught:
        preflight.check_spec_unchanged(SweepLayout(Storage(tmp_path), "x"), _spec(), new_version=False)
    lines = str(caught.value).splitlines()
    assert [line for line in lines if line.startswith("  - ")] == [f"  - {c}" for c in changes[:20]]
    assert [line for line in lines if line.startswith("  ...")] == ([more] if more else [])
    assert preflight.check_spec_unchanged(SweepLayout(Storage(tmp_path), "x"), _spec(), new_version=True) == changes


@pytest.mark.parametrize("changes, note", [
    (["finetune.lam: 10.0 -> 3.0"], "No planned task reads `finetune.lam`: this change changes no result; leave it as "
                                    "the stored spec has it, or record it with --new-version (no task runs again)."),
    (["finetune.lam: 10.0 -> 3.0", "finetune.lr: 0.02 -> 0.5"],
     "No planned task reads `finetune.lam`: that change alone would change no result."),
    (["finetune.lr: 0.02 -> 0.5"], None),
])
def test_a_changed_setting_no_planned_task_reads_is_said_to_change_no_result(tmp_path, monkeypatch, changes, note):
    """`plan` warns that a set `finetune.lam` (naive fine-tuning alone) changes nothing; the refusal to rerun the
    sweep with it changed says the same, and how to keep or record it, instead of contradicting the warning."""
    monkeypatch.setattr(preflight, "stored_spec", lambda layout: {"name": "x"})
    monkeypatch.setattr(preflight.spec_lib, "differences", lambda old, new: changes)
    with pytest.raises(SweepError) as caught:
        preflight.check_spec_unchanged(SweepLayout(Storage(tmp_path), "x"), _spec(), False, ["finetune.lam"])
    last = str(caught.value).splitlines()[-1]
    assert last == note if note else last.startswith("A sweep directory holds the results of one spec.")


def test_a_stored_spec_that_is_a_directory_is_refused_even_with_new_version(tmp_path):
    """--new-version replaces an unreadable stored spec only where it is a regular file (it is archived); a
    directory there is refused with the fix, to move it away."""
    layout = SweepLayout(Storage(tmp_path), "x")
    Path(layout.spec_file()).mkdir(parents=True)
    with pytest.raises(SweepError, match="is not a regular file"):
        preflight.check_spec_unchanged(layout, _spec(), new_version=True)
    assert Path(layout.spec_file()).is_dir()


def test_an_http_tracking_server_without_a_port_is_asked_on_port_80_and_https_without_verifying(http_conn,
                                                                                                monkeypatch):
    """http:// defaults to port 80; over https:// any certificate counts as an answer (reachability only, MLflow
    verifies): no hostname check, no verification."""
    contexts = []
    original = Conn.__init__
    monkeypatch.setattr(Conn, "__init__", lambda self, host, port, timeout, context=None:
                        contexts.append(context) or original(self, host, port, timeout, context))
    preflight.check_tracking_server("http://mlflow.example.org/")
    preflight.check_tracking_server("https://mlflow.example.org/")
    assert [(c.host, c.port, c.asked) for c in http_conn] == [("mlflow.example.org", 80, ("GET", "/health")),
                                                              ("mlflow.example.org", 443, ("GET", "/health"))]
    tls = contexts[1]
    assert contexts[0] is None and (tls.check_hostname, tls.verify_mode) == (False, preflight.ssl.CERT_NONE)


def test_with_ray_tls_only_the_connection_is_checked(connections, monkeypatch):
    """`RAY_USE_TLS=1`: Ray's gRPC speaks TLS, so the HTTP/2 preface would get no SETTINGS frame; a server that
    accepts the connection passes, and nothing is sent to it."""
    monkeypatch.setenv("RAY_USE_TLS", "1")
    connections.answer = b""
    preflight.check_ray_address("10.0.0.1:6379")
    assert connections.addresses == [("10.0.0.1", 6379)] and connections.socks[0].sent == b""


@pytest.mark.parametrize("address", ["10.0.0.1", "ray://head", "head:"])
def test_an_address_without_a_port_is_refused_before_connecting(connections, address):
    with pytest.raises(SweepError, match=r"is not host:port$"):
        preflight.check_ray_address(address)
    assert connections.addresses == []


@pytest.mark.parametrize("address", ["ray://head:10001", "ray://u:SUPERSECRETfake7f3a@127.0.0.1:10001"])
def test_a_ray_client_address_is_refused_before_connecting(connections, address):
    """Ray Client (`ray://`) runs the driver's Ray calls remotely, and Ray Tune's searcher then failed mid-run with
    a traceback (`'DagSearcher' object has no attribute '_metric'`) after the sweep directory was written."""
    with pytest.raises(SweepError, match=r"is a Ray Client address, which a sweep cannot use") as refused:
        preflight.check_ray_address(address)
    assert connections.addresses == [] and "SUPERSECRET" not in str(refused.value) and "cluster/submit.sh" in str(refused.value)


def test_a_refused_address_names_where_it_came_from(connections, monkeypatch):
    """The message names what the user set: `$RAY_ADDRESS` when the address is the environment's, else
    `--address`."""
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1")
    with pytest.raises(SweepError, match=r"^\$RAY_ADDRESS '10\.0\.0\.1' is not host:port"):
        preflight.check_ray_address("10.0.0.1")
    with pytest.raises(SweepError, match=r"^--address '10\.0\.0\.2' is not host:port"):
        preflight.check_ray_address("10.0.0.2")


@pytest.mark.parametrize("code, start", [
    ("INVALID_ACCESS_KEY_ID", "the object store refused the credentials"),
    ("SIGNATURE_DOES_NOT_MATCH", "the object store refused the credentials"),
    ("NO_SUCH_BUCKET", "bucket `b` does not exist"),
    ("Bucket 'b' not found", "bucket `b` does not exist"),
    ("NETWORK_CONNECTION", "the object store does not answer"),
    ("curlCode: 7, Couldn't connect to server", "the object store does not answer"),
    ("curlCode: 28, Timeout was reached", "the object store does not answer"),
    ("Could not resolve host", "the object store does not answer"),
])
def test_every_code_of_an_object_stores_refusal_is_told_with_its_fix(code, start):
    """pyarrow's S3 errors name the AWS error (`INVALID_ACCESS_KEY_ID`, `NO_SUCH_BUCKET`) or curl's
    (`curlCode`); GCS says `Bucket 'b' not found`."""
    assert preflight.object_store_problem("s3://b/runs", OSError(f"When reading: {code}")).startswith(start)


def test_an_s3_stores_refusal_names_its_endpoint_or_aws_and_a_gcs_one_none():
    """README: ``bucket `BUCKET` does not exist at HOST:9000``; without an endpoint the store is AWS itself, in
    its region."""
    def s3(**options):
        fs = pafs.S3FileSystem(anonymous=True, **options)
        return SimpleNamespace(fs=fs, root="bucket/runs", base_uri="s3://bucket/runs")

    missing = OSError("NoSuchBucket")
    assert preflight.object_store_problem(s3(endpoint_override="127.0.0.1:9000", scheme="http"), missing).startswith(
        "bucket `bucket` does not exist at 127.0.0.1:9000; create it")
    assert preflight.object_store_problem(s3(region="eu-west-1"), missing).startswith(
        "bucket `bucket` does not exist at AWS (eu-west-1); create it")
    gcs = SimpleNamespace(fs=None, root="bucket/runs", base_uri="gs://bucket/runs")
    assert preflight.object_store_problem(gcs, missing).startswith("bucket `bucket` does not exist; create it")


def test_a_new_sweeps_prefix_that_does_not_exist_yet_is_listed_without_failing():
    """A new sweep's directory is no object yet: the LIST that checks the credentials must allow it to be missing
    (pyarrow raises FileNotFoundError for a missing base directory otherwise)."""
    class NewPrefix(StoreFS):
        def get_file_info(self, what):
            if isinstance(what, pafs.FileSelector) and not what.allow_not_found:
                raise FileNotFoundError(f"{what.base_dir} does not exist")
            return super().get_file_info(what)

    fs = NewPrefix(bucket_exists=True)
    preflight._check_bucket(_bucket_layout(fs))
    assert fs.listed == ["bucket/runs/x"]


def test_the_first_requests_to_s3_are_one_attempt_each_within_the_connect_timeout(monkeypatch):
    """A silent endpoint is reported in seconds: the bucket check's file system keeps the storage's endpoint,
    region and scheme, with MMC_CONNECT_TIMEOUT_S as its connect and request timeouts and a single attempt (the
    storage's own file system retries with backoff). Other file systems are used as they are."""
    attempts = []
    standard = pafs.AwsStandardS3RetryStrategy
    monkeypatch.setattr(pafs, "AwsStandardS3RetryStrategy",
                        lambda max_attempts: attempts.append(max_attempts) or standard(max_attempts=max_attempts))
    monkeypatch.setenv(knobs.CONNECT_TIMEOUT_S.name, "3")
    fs = pafs.S3FileSystem(anonymous=True, region="eu-west-1", endpoint_override="127.0.0.1:9000", scheme="http")
    options = preflight._probe_filesystem(SimpleNamespace(fs=fs)).__reduce__()[1][0]
    assert (options["connect_timeout"], options["request_timeout"]) == (3.0, 3.0) and attempts == [1]
    assert (options["endpoint_override"], options["region"], options["scheme"]) == ("127.0.0.1:9000", "eu-west-1", "http")
    local = pafs.LocalFileSystem()
    assert preflight._probe_filesystem(SimpleNamespace(fs=local)) is local


@pytest.mark.parametrize("where", ["report", "results", "tasks", "ray", "tasks/pretrain", "results/paths"])
def test_a_file_where_a_run_writes_a_directory_is_refused_before_any_work(tmp_path, where):
    """`check_report_dir`: `report/`, `results/` (and each table's), `tasks/` (and each kind's) and `ray/` of the
    sweep must be directories where they exist; a file there is refused, naming it."""
    layout = SweepLayout(Storage(tmp_path), "x")
    path = tmp_path / "x" / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not a directory")
    with pytest.raises(SweepError, match=f"{path} is not a directory, but mmc-sweep writes into a directory there"):
        preflight.check_report_dir(layout)


def test_new_directories_on_a_remote_file_system_are_removed_innermost_first_and_only_while_empty():
    """`remove_new_directories` undoes what a stopped run created, never more: on a file system without
    `rmdir`'s guarantee (not local, not an object store) a directory is deleted only when it lists nothing."""
    def storage(tree: dict) -> SimpleNamespace:
        def delete(path):
            deleted.append(path)
            del tree[path]
            for entries in tree.values():
                entries[:] = [e for e in entries if e != path]
        return SimpleNamespace(is_local=False, exists=lambda p: p in tree, listdir=lambda p: list(tree[p]),
                               delete=delete)

    deleted = []
    used = SimpleNamespace(storage=storage({"root": ["root/x"], "root/x": ["root/x/lock"]}))
    preflight.remove_new_directories(used, ["root", "root/x"])
    assert deleted == []
    empty = SimpleNamespace(storage=storage({"root": ["root/x"], "root/x": []}))
    preflight.remove_new_directories(empty, ["root", "root/x"])
    assert deleted == ["root/x", "root"]


# ----- blind hunt 41: refusals that name the nodes, TLS, credentials, the stored spec

def test_a_refusal_lists_six_kinds_of_node_then_counts_the_others():
    """A GPU worker of {CPU 2, GPU 1} on eight kinds of node, none with both: the first six kinds are listed,
    then how many more there are."""
    spec = _spec("resources: {finetune: {cpus: 2, gpus: 1}}\n")
    nodes = [{"CPU": float(c)} for c in range(2, 9)] + [{"CPU": 1.0, "GPU": 1.0}]
    cluster = {"CPU": 36.0, "GPU": 1.0, "nodes": nodes}
    problems = preflight.check_resources(spec, cluster, ["finetune"])
    assert len(problems) == 1 and "fits on no node (nodes: " in problems[0]
    listed = problems[0].split("(nodes: ", 1)[1].split("); ", 1)[0]
    assert listed == ("1 x {CPU 2, GPU 0}, 1 x {CPU 3, GPU 0}, 1 x {CPU 4, GPU 0}, 1 x {CPU 5, GPU 0}, "
                      "1 x {CPU 6, GPU 0}, 1 x {CPU 7, GPU 0}, ... 2 more kinds")


@pytest.mark.parametrize("value", ["true", "TRUE", "yes"])
def test_ray_tls_said_as_true_or_yes_checks_only_the_connection_too(connections, monkeypatch, value):
    monkeypatch.setenv("RAY_USE_TLS", value)
    connections.answer = b""
    preflight.check_ray_address("10.0.0.1:6379")
    assert connections.addresses == [("10.0.0.1", 6379)] and connections.socks[0].sent == b""


def test_an_s3_endpoint_with_credentials_is_named_without_them():
    fs = pafs.S3FileSystem(anonymous=True, endpoint_override="http://u:SECRETfake4@127.0.0.1:9000")
    store = SimpleNamespace(fs=fs, root="bucket/runs", base_uri="s3://bucket/runs")
    problem = preflight.object_store_problem(store, OSError("NoSuchBucket"))
    assert problem.startswith("bucket `bucket` does not exist at http://***@127.0.0.1:9000; create it")
    assert "SECRETfake4" not in problem


def test_a_storage_that_cannot_be_opened_is_refused_without_the_credentials_the_error_quotes(monkeypatch):
    def cannot_open(uri):
        raise ValueError("cannot open http://u:SECRETfake3@files.example/x\nsearched: ...")

    monkeypatch.setattr(preflight, "Storage", cannot_open)
    with pytest.raises(SweepError) as refused:
        preflight.open_layout(SimpleNamespace(storage="/runs", name="x"))
    assert "SECRETfake3" not in str(refused.value)
    assert "cannot be opened: ValueError: cannot open http://***@files.example/x. Give" in str(refused.value)


def test_a_stored_spec_too_large_is_refused_saying_its_size(tmp_path):
    layout = SweepLayout(Storage(tmp_path), "x")
    Path(layout.spec_file()).parent.mkdir(parents=True)
    Path(layout.spec_file()).write_bytes(b"a" * (preflight.MAX_SPEC_BYTES + 1))
    with pytest.raises(SweepError) as refused:
        preflight.stored_spec(layout)
    assert str(refused.value).startswith(f"the stored spec {layout.spec_file()} is {preflight.MAX_SPEC_BYTES + 1} "
                                         f"bytes, more than the {preflight.MAX_SPEC_BYTES} expected; rerun with "
                                         "--new-version")


def test_an_unreadable_stored_spec_is_replaced_only_with_new_version(tmp_path):
    layout = SweepLayout(Storage(tmp_path), "x")
    Path(layout.spec_file()).parent.mkdir(parents=True)
    Path(layout.spec_file()).write_text("key: [unclosed")
    with pytest.raises(SweepError, match="is unreadable .*rerun with --new-version to replace it"):
        preflight.check_spec_unchanged(layout, _spec(), new_version=False)
    assert preflight.check_spec_unchanged(layout, _spec(), new_version=True) == ["spec.yaml: <unreadable> -> this spec"]
