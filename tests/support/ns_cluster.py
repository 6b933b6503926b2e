"""A Ray cluster whose nodes do not share a disk, on one Linux host (for tests).

- head: `ray start --head --block` in the test's own mount namespace, with its own `--temp-dir`,
  a GCS port chosen by Ray (`--port=0`, read back from `<temp-dir>/ray_current_cluster`), every
  other port Ray's choice too, no dashboard and no Ray Client server (whose port is fixed at 10001
  by `ray start`: the `RAY_START_HOOK` below drops it), custom resource `ns_head`.
- worker: `ray start --address=HEAD --block` inside `unshare --mount --uts --propagation private`,
  after a fresh tmpfs was mounted over each of `local_dirs` (the sweep's local storage and data
  directories) and the host name set to `mmc-ns-worker`: at those paths the worker sees an empty
  file system of its own, like a second machine, while the repository, Python and `shared` (which
  stands in for an NFS export mounted on every node) are the same. Custom resource `ns_worker`.

Token authentication uses a token made for this cluster (`RAY_AUTH_TOKEN` in the environment of
every process started here and of the CLI calls in `env`), never `~/.ray/auth_token`, and no
RAY_ADDRESS of the caller reaches them. Nothing is stopped with `ray stop`, which stops every Ray
of the machine (other people's tests included): the head is stopped by killing the session that
its `ray start` leads, the worker by killing every process in its mount namespace, which also
drops its tmpfs. `ns_cluster` (module-scoped fixture) does both even when a test fails, and skips
with the reason where mount namespaces are not permitted.
"""
from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
WORKER_HOST = "mmc-ns-worker"
HEAD_RESOURCE, WORKER_RESOURCE = "ns_head", "ns_worker"
START_TIMEOUT_S = 120
OBJECT_STORE_BYTES = 100 * 1024 ** 2
# Notice a killed node within seconds, not ~30 s (cluster-wide, set on the head).
SYSTEM_CONFIG = {"health_check_period_ms": 1000, "health_check_failure_threshold": 5}
HOOK = "tests.support.ns_cluster.no_ray_client_server"


def no_ray_client_server(ray_params, head) -> None:
    """RAY_START_HOOK: `ray start --head` would bind the Ray Client server to the fixed port 10001."""
    ray_params.ray_client_server_port = None


def namespace_problem() -> str | None:
    """Why a worker cannot get a private mount namespace with a tmpfs and its own host name here (None: it can)."""
    for tool in ("unshare", "nsenter", "mount", "hostname"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    with tempfile.TemporaryDirectory(prefix="mmcns-probe-") as d:
        q = shlex.quote(d)
        script = (f"mount -t tmpfs mmc-ns-probe {q} && touch {q}/inside && hostname {WORKER_HOST} "
                  f"&& test \"$(hostname)\" = {WORKER_HOST}")
        try:
            out = subprocess.run(["unshare", "--mount", "--uts", "--propagation", "private", "--", "sh", "-c", script],
                                 capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"`unshare --mount --uts` failed: {exc}"
        if out.returncode != 0:
            return (f"mount namespaces are not permitted here (`unshare --mount --uts --propagation private` + "
                    f"`mount -t tmpfs` failed: {(out.stderr or out.stdout).strip()[:300]}); the multi-node "
                    f"tests need root or CAP_SYS_ADMIN")
        if os.path.exists(os.path.join(d, "inside")):
            return "a tmpfs mounted inside `unshare --mount --propagation private` showed up outside it"
    return None


def cluster_env(token: str) -> dict:
    """The environment of everything that talks to the cluster: the suite's clean environment (no
    RAY_ADDRESS or fault injection of the caller, the repository importable) and the cluster's token."""
    from tests.conftest import clean_env   # here, not at the top: `ray start` imports this module for HOOK

    env = clean_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    return env


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, session id) of a process; None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()   # state ppid pgrp session ...
    return fields[0], int(fields[3])


def _mount_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def pids_in_session(sid: int) -> list[int]:
    return [p for p in _pids() if (st := _proc_stat(p)) is not None and st[1] == sid and st[0] != "Z"]


def pids_in_mount_ns(ns: str) -> list[int]:
    return [p for p in _pids() if _mount_ns(p) == ns and (st := _proc_stat(p)) is not None and st[0] != "Z"]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def node_args(temp_dir: Path) -> list[str]:
    """The arguments of every `ray start` of the test clusters: blocking (the test holds the process and
    its session), a temp dir of its own, a small object store, ports of Ray's choice, no usage stats."""
    return ["--block", f"--object-store-memory={OBJECT_STORE_BYTES}", f"--temp-dir={temp_dir}",
            "--dashboard-agent-listen-port=0", "--min-worker-port=0", "--max-worker-port=0", "--disable-usage-stats"]


def kill_session(proc: subprocess.Popen, what: str) -> None:
    """SIGKILL every process of the session `proc` leads (a `ray start` and all it started), and reap it."""
    _kill_all(lambda: pids_in_session(proc.pid), what)
    proc.wait(timeout=30)


def _kill_all(find, what: str, timeout_s: float = 20) -> None:
    """SIGKILL every process `find()` returns until none is left."""
    deadline = time.time() + timeout_s
    while pids := find():
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.time() > deadline:
            raise RuntimeError(f"{what}: processes {pids} survive SIGKILL")
        time.sleep(0.2)


_NODES_SCRIPT = r"""
import json, sys, time
import ray
address, want, timeout_s = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
ray.init(address=address, log_to_driver=False, logging_level="ERROR")
deadline = time.time() + timeout_s
while True:
    nodes = [{"id": n["NodeID"], "alive": bool(n["Alive"]), "ip": n["NodeManagerAddress"],
              "host": n.get("NodeManagerHostname"), "resources": n.get("Resources", {})} for n in ray.nodes()]
    alive = [n for n in nodes if n["alive"]]
    # the resources as a sweep's preflight sees them (ray.cluster_resources()), not only the node list
    visible = ray.cluster_resources()
    ok = (len(alive) == want["alive"] and all(any(r in n["resources"] for n in alive) for r in want["with"])
          and all(visible.get(r, 0) >= 1 for r in want["with"])
          and not any(n["id"] in want["gone"] for n in alive)
          and all(any(r in n["resources"] and n["id"] not in want["old"] for n in alive) for r in want["new"]))
    if ok or time.time() > deadline:
        print("NODES" + json.dumps(nodes))
        break
    time.sleep(0.5)
"""


class NsCluster:
    """See the module docstring. Paths: `storage_dir` and `data_dir` are private to each node,
    `shared` is one directory for all nodes; Ray's own files live under `base/ray-*`."""

    def __init__(self, base: Path):
        self.base = base
        self.disk = base / "disk"                    # "local disks": the worker has its own tmpfs at these paths
        self.storage_dir = self.disk / "runs"
        self.data_dir = self.disk / "data"
        self.local_dirs = (self.storage_dir, self.data_dir)
        self.shared = base / "nfs"                   # one directory that every node sees (as NFS would be)
        for d in (*self.local_dirs, self.shared):
            d.mkdir(parents=True)
        self.env = cluster_env(secrets.token_hex(32))
        self.address: str | None = None
        self.head: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.worker_ns: str | None = None
        self._logs: list = []
        self._workers_started = 0
        self._old_workers: set[str] = set()       # node ids of workers killed earlier
        self._worker_id: str | None = None

    # ---- starting

    def _node_env(self, extra: dict | None = None) -> dict:
        return {**self.env, "RAY_START_HOOK": HOOK, **(extra or {})}

    def _log(self, name: str):
        f = open(self.base / name, "w")
        self._logs.append(f)
        return f

    def start(self) -> None:
        self.start_head()
        self.start_worker()

    def start_head(self) -> None:
        temp_dir = self.base / "ray-head"
        cmd = [RAY, "start", "--head", "--port=0", "--include-dashboard=false", "--num-cpus=1", *node_args(temp_dir),
               f"--resources={json.dumps({HEAD_RESOURCE: 1})}", f"--system-config={json.dumps(SYSTEM_CONFIG)}"]
        self.head = subprocess.Popen(cmd, stdout=self._log("head.log"), stderr=subprocess.STDOUT, env=self._node_env(),
                                     cwd=self.base, start_new_session=True)
        address_file = temp_dir / "ray_current_cluster"
        deadline = time.time() + START_TIMEOUT_S
        while not (address_file.is_file() and address_file.read_text().strip()):
            if self.head.poll() is not None or time.time() > deadline:
                raise RuntimeError("the Ray head did not start:\n" + self.log_tail("head.log"))
            time.sleep(0.5)
        self.address = address_file.read_text().strip()

    def start_worker(self, env: dict | None = None, timeout_s: float = START_TIMEOUT_S) -> str:
        """A worker node in a new mount namespace (fresh tmpfs at `local_dirs`); returns its node id.
        `env`: extra environment of the node's processes (its Ray workers inherit it)."""
        assert self.address and self.worker is None
        self._workers_started += 1
        name = f"worker-{self._workers_started}"
        ray_cmd = [RAY, "start", f"--address={self.address}", "--num-cpus=1", *node_args(self.base / f"ray-{name}"),
                   f"--resources={json.dumps({WORKER_RESOURCE: 1})}"]
        script = ('set -e; for d in "$@"; do mount -t tmpfs -o size=512m,mode=0755 mmc-ns-worker "$d"; done; '
                  f"hostname {WORKER_HOST}; exec {shlex.join(ray_cmd)}")
        cmd = ["unshare", "--mount", "--uts", "--propagation", "private", "--", "sh", "-c", script, "sh",
               *map(str, self.local_dirs)]
        self.worker = subprocess.Popen(cmd, stdout=self._log(f"{name}.log"), stderr=subprocess.STDOUT,
                                       env=self._node_env(env), cwd=self.base, start_new_session=True)
        mine = _mount_ns(os.getpid())
        deadline = time.time() + 30
        while (ns := _mount_ns(self.worker.pid)) in (None, mine):
            if self.worker.poll() is not None or time.time() > deadline:
                raise RuntimeError("the worker's namespace did not come up:\n" + self.log_tail(f"{name}.log"))
            time.sleep(0.05)
        self.worker_ns = ns
        # a node that is new (not a killed worker still listed as alive) and whose resources the
        # cluster's resource view shows: what a sweep's preflight reads right after this returns
        nodes = self.nodes(alive=2, new_worker=True, timeout_s=timeout_s)
        worker = [n for n in nodes if n["alive"] and WORKER_RESOURCE in n["resources"]
                  and n["id"] not in self._old_workers]
        if self.worker.poll() is not None or len(worker) != 1:
            raise RuntimeError(f"the worker node did not join: {nodes}\n" + self.log_tail(f"{name}.log"))
        self._worker_id = worker[0]["id"]
        return self._worker_id

    def nodes(self, *, alive: int = 0, gone: tuple[str, ...] = (), new_worker: bool = False,
              timeout_s: float = 0) -> list[dict]:
        """`ray.nodes()` of the cluster (from a separate driver process), once the wanted state holds or
        `timeout_s` passed: `alive` nodes alive, with a head and (if alive > 1) a worker, their resources
        visible in `ray.cluster_resources()`, none of `gone`; with `new_worker`, a worker that is none of
        the workers started before."""
        want = {"alive": alive, "with": [HEAD_RESOURCE] + ([WORKER_RESOURCE] if alive > 1 else []),
                "gone": list(gone), "new": [WORKER_RESOURCE] if new_worker else [],
                "old": sorted(self._old_workers)} \
            if alive else {"alive": -1, "with": [], "gone": [], "new": [], "old": []}
        out = subprocess.run([sys.executable, "-c", _NODES_SCRIPT, self.address, json.dumps(want), str(timeout_s)],
                             capture_output=True, text=True, env=self.env, cwd=self.base, timeout=timeout_s + 60)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("NODES")), None)
        if line is None:
            raise RuntimeError(f"cannot list the cluster's nodes:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        return json.loads(line[len("NODES"):])

    def wait_for_nodes(self, *, alive: int, gone: tuple[str, ...] = (),
                       timeout_s: float = START_TIMEOUT_S) -> list[dict]:
        return self.nodes(alive=alive, gone=gone, timeout_s=timeout_s)

    # ---- looking into the worker

    def in_worker(self, *cmd: str, **kwargs) -> subprocess.CompletedProcess:
        """Run `cmd` in the worker's mount namespace (sees the worker's files)."""
        pids = pids_in_mount_ns(self.worker_ns) if self.worker_ns else []
        assert pids, "the worker node is not running"
        return subprocess.run(["nsenter", f"--mount=/proc/{pids[0]}/ns/mnt", "--", *cmd], capture_output=True,
                              text=True, timeout=60, **kwargs)

    def worker_processes(self) -> dict[int, str]:
        """pid -> command line (Ray workers show their task, e.g. `ray::ImplicitFunc.train`) in the worker."""
        return {pid: cmdline(pid) for pid in pids_in_mount_ns(self.worker_ns)} if self.worker_ns else {}

    # ---- stopping

    def kill_worker(self) -> None:
        """The worker node goes away at once: SIGKILL to every process of its namespace (its tmpfs goes too)."""
        if self.worker is None:
            return
        ns = self.worker_ns
        if ns is not None:
            _kill_all(lambda: pids_in_mount_ns(ns), "the worker node")
        else:
            _kill_all(lambda: pids_in_session(self.worker.pid), "the worker node")
        self.worker.wait(timeout=30)
        self.worker, self.worker_ns = None, None
        if self._worker_id is not None:
            self._old_workers.add(self._worker_id)
            self._worker_id = None

    def stop(self) -> None:
        try:
            self.kill_worker()
        finally:
            if self.head is not None:
                kill_session(self.head, "the Ray head")
                self.head = None
            for f in self._logs:
                f.close()

    def log_tail(self, name: str, chars: int = 3000) -> str:
        try:
            return (self.base / name).read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def start_in_temp_dir(make, prefix: str):
    """`make(base)` (a test cluster) in a new directory under /tmp, started; stopped again (and its files
    removed) if starting fails. Short paths: Ray's socket paths are limited."""
    cluster = make(Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp")))
    try:
        cluster.start()
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def stop_cluster(cluster) -> None:
    """Every process of a test cluster killed, its directory removed."""
    try:
        cluster.stop()
    finally:
        shutil.rmtree(cluster.base, ignore_errors=True)


def start_cluster() -> NsCluster:
    """A head and one worker."""
    return start_in_temp_dir(NsCluster, "mmcns-")


@pytest.fixture(scope="module")
def ns_cluster():
    """A head and a worker in its own mount namespace (see the module docstring), per test module."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the namespace cluster needs Linux mount namespaces")
    reason = namespace_problem()
    if reason:
        pytest.skip(reason)
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        stop_cluster(cluster)
