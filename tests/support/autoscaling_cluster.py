"""A Ray cluster that scales from zero on one host (for tests), through Ray's fake multi-node provider.

- head: `RAY_FAKE_CLUSTER=1 ray start --head --block --autoscaling-config=CONFIG` in a session of its
  own, with its own `--temp-dir`, `CPU: 0` and no GPU, no dashboard and no Ray Client server (the
  `RAY_START_HOOK` of ns_cluster drops it). The GCS port is chosen free just before the start (the
  provider config must name the GCS address); a head that could not bind it is started again.
- one worker node type, `gpu_worker` = {CPU: 1, GPU: 1} (fake GPUs: Ray counts them, nothing uses them),
  `min_workers: 0`, `max_workers: 2`: the shape of cluster/cluster.yaml and cluster/rayjob.yaml (a test
  compares them). Ray's autoscaler (v1, as `ray up` runs it) starts its nodes on demand (within its update,
  FOREGROUND_LAUNCH) as processes of the head's session (`ray._private.node.Node`), each with RAY_OVERRIDE_NODE_ID_FOR_TESTING=<its node
  id> in its environment, and removes them after IDLE_TIMEOUT_MIN idle, or HEARTBEAT_TIMEOUT_S after
  they died.
- the environment of every process: the suite's clean one (no RAY_ADDRESS of the caller), a token of
  this cluster, and `extra_env` (the test runners' variables); not CUDA_VISIBLE_DEVICES="" (a raylet with a GPU
  refuses to start with no visible device).

`ray.cluster_utils.AutoscalingCluster` is not used: its `start()` runs `ray stop --force`, which stops
every Ray of the machine. Nothing here does: the cluster is stopped by SIGKILL to every process of the
head's session (the autoscaler's nodes included), a node by SIGKILL to the processes of that node.
"""
from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

from tests.support.ns_cluster import (HOOK, OBJECT_STORE_BYTES, RAY, START_TIMEOUT_S, SYSTEM_CONFIG, _kill_all,
                                      cluster_env, kill_session, node_args, pids_in_session, start_in_temp_dir,
                                      stop_cluster)  # noqa: F401 (stop_cluster: the tests stop this cluster with it)
HEAD_TYPE, WORKER_TYPE = "ray.head.default", "gpu_worker"   # the fake provider's head must be ray.head.default
WORKER_RESOURCES = {"CPU": 1, "GPU": 1}
MAX_WORKERS = 2
IDLE_TIMEOUT_MIN = 0.25         # 15 s: a node that has just joined is claimed well within it, even on 2 busy cores
# A node that stopped reporting is removed (and can be replaced) after this. Ray's own default: the clock
# starts when the provider reports the node up, before its raylet has registered, and a raylet can take
# several seconds to register on 2 busy cores.
HEARTBEAT_TIMEOUT_S = 30
# Nodes are started within the autoscaler's update, not by its launcher threads. With launcher threads, an
# update can read the node list while a launch is under way and the count of pending launches after it
# ended (Ray 2.60, v1): it misses the node just started, starts one more than max_workers and terminates one
# again ("max_workers_per_type"), with a task on it. The fake provider starts a node in seconds on 2 busy
# cores, which makes that window wide; a CI run and a run here both lost a task to it.
FOREGROUND_LAUNCH = True
HEAD_ATTEMPTS = 3
NODE_ID_ENV = "RAY_OVERRIDE_NODE_ID_FOR_TESTING"
FAKE_HEAD_ID = "f" * 51 + "00000"


def config(gcs_address: str) -> dict:
    """The autoscaling config: the fake provider, a CPU-0 head and the GPU worker type."""
    return {
        "cluster_name": "mmc-fake", "max_workers": MAX_WORKERS, "upscaling_speed": 1.0,
        "idle_timeout_minutes": IDLE_TIMEOUT_MIN,
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True, "launch_multiple": True, "gcs_address": gcs_address,
                     "foreground_node_launch": FOREGROUND_LAUNCH},
        "available_node_types": {
            HEAD_TYPE: {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            WORKER_TYPE: {"resources": {**WORKER_RESOURCES, "object_store_memory": OBJECT_STORE_BYTES},
                          "node_config": {}, "min_workers": 0, "max_workers": MAX_WORKERS},
        },
        "head_node_type": HEAD_TYPE, "auth": {}, "docker": {}, "file_mounts": {}, "cluster_synced_files": [],
        "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [], "worker_setup_commands": [],
        "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


class AutoscalingCluster:
    """See the module docstring. `address`: the GCS (host:port); `env`: what a driver needs to connect."""

    def __init__(self, base: Path, extra_env: dict | None = None):
        self.base = base
        self.env = {k: v for k, v in cluster_env(secrets.token_hex(32)).items() if k != "CUDA_VISIBLE_DEVICES"}
        self.node_env = {**self.env, "RAY_START_HOOK": HOOK, "RAY_FAKE_CLUSTER": "1",
                         "AUTOSCALER_UPDATE_INTERVAL_S": "1",
                         "AUTOSCALER_HEARTBEAT_TIMEOUT_S": str(HEARTBEAT_TIMEOUT_S), **(extra_env or {})}
        self.config_file = base / "autoscaling.json"
        self.address: str | None = None
        self.head: subprocess.Popen | None = None
        self._log = None

    def start(self) -> None:
        for attempt in range(HEAD_ATTEMPTS):
            if self._start_head(attempt):
                return
        raise RuntimeError(f"the Ray head could not bind a GCS port in {HEAD_ATTEMPTS} attempts:\n{self.log_tail()}")

    def _start_head(self, attempt: int) -> bool:
        self.address = f"127.0.0.1:{_free_port()}"
        self.config_file.write_text(json.dumps(config(self.address)))
        temp_dir = self.base / f"ray-{attempt}"
        self._log = open(self.base / "head.log", "a")
        cmd = [RAY, "start", "--head", f"--port={self.address.rsplit(':', 1)[1]}", "--num-cpus=0", "--num-gpus=0",
               "--include-dashboard=false", *node_args(temp_dir), f"--autoscaling-config={self.config_file}",
               f"--system-config={json.dumps(SYSTEM_CONFIG)}"]
        self.head = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self.node_env,
                                     cwd=self.base, start_new_session=True)
        deadline = time.time() + START_TIMEOUT_S
        while not self._autoscaler_reports():
            if self.head.poll() is not None or time.time() > deadline:
                self.stop()
                if "already in use" in self.log_tail() and time.time() <= deadline:
                    return False
                raise RuntimeError("the Ray head did not start:\n" + self.log_tail())
            time.sleep(1)
        return True

    def _autoscaler_reports(self) -> bool:
        """The head is up and its autoscaler has reported (with the head as its only node)."""
        status = self.status()
        return bool(status) and (status.get("autoscaler_report") or {}).get("active_nodes") == {HEAD_TYPE: 1}

    def status(self) -> dict | None:
        """The autoscaler's report (what `ray status` reads), from a driver process of its own."""
        script = ("import json, sys\nfrom ray._raylet import GcsClient\n"
                  "raw = GcsClient(address=sys.argv[1]).internal_kv_get(b'__autoscaling_status', namespace=None)\n"
                  "print('STATUS' + (raw.decode() if raw else 'null'))\n")
        try:
            out = subprocess.run([sys.executable, "-c", script, self.address], capture_output=True, text=True,
                                 env=self.env, timeout=60)
        except subprocess.TimeoutExpired:
            return None
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("STATUS")), None)
        return json.loads(line[len("STATUS"):]) if line else None

    # ---- nodes

    def node_ids(self) -> set[str]:
        """Node ids of the worker nodes whose processes run (their raylets)."""
        if self.head is None:
            return set()
        ids = set()
        for pid in pids_in_session(self.head.pid):
            node_id = _environ(pid).get(NODE_ID_ENV)
            if node_id and node_id != FAKE_HEAD_ID and _comm(pid) == "raylet":
                ids.add(node_id)
        return ids

    def kill_node(self, node_id: str) -> None:
        """The worker node goes away at once: SIGKILL to its raylet and every process it started."""
        assert self.head is not None

        def processes() -> list[int]:
            mine = [p for p in pids_in_session(self.head.pid) if _environ(p).get(NODE_ID_ENV) == node_id]
            raylets = set(mine)
            children = [p for p in pids_in_session(self.head.pid) if _ppid(p) in raylets]
            return sorted(set(mine) | set(children))

        _kill_all(processes, f"node {node_id[-5:]}")

    def terminated(self) -> set[str]:
        """Node ids of the worker nodes the autoscaler has terminated (any reason), from its log."""
        return set(re.findall(r"Terminating the node with id (\w+)", self.monitor_log()))

    def decisions(self) -> str:
        """The autoscaler's launches and terminations so far (with their reasons), from its log."""
        wanted = ("Queue", "Launching", "Terminating the node", "Removing", "Adding", "Failed to launch")
        return "\n".join(ln for ln in self.monitor_log().splitlines() if any(w in ln for w in wanted))

    def log_tail(self, chars: int = 3000) -> str:
        text = (self.base / "head.log").read_text(errors="replace") if (self.base / "head.log").exists() else ""
        monitors = sorted(self.base.glob("ray-*/session_latest/logs/monitor.log"))
        if monitors:
            text += "\n--- monitor.log ---\n" + monitors[-1].read_text(errors="replace")
        return text[-chars:] + "\n--- the autoscaler's decisions ---\n" + self.decisions()

    def monitor_log(self) -> str:
        monitors = sorted(self.base.glob("ray-*/session_latest/logs/monitor.log"))
        return monitors[-1].read_text(errors="replace") if monitors else ""

    # ---- stopping

    def stop(self) -> None:
        if self.head is not None:
            kill_session(self.head, "the Ray head and its nodes")
            self.head = None
        if self._log is not None:
            self._log.close()
            self._log = None


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _ppid(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2:].split()[1])


def start_cluster(extra_env: dict | None = None) -> AutoscalingCluster:
    return start_in_temp_dir(lambda base: AutoscalingCluster(base, extra_env), "mmcas-")
