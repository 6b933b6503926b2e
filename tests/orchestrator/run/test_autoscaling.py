"""A sweep on a cluster that scales from zero (tests/support/autoscaling_cluster.py): a head with
`CPU: 0` and a GPU worker type with `min_workers: 0`, as cluster/cluster.yaml ships, right after `ray up`.

The sweep's tasks ask for a GPU each (synthetic runner: real tables, no computing). It is accepted
although the cluster has no GPU yet, the autoscaler starts two GPU nodes at once for it, and both
pretraining tasks run at once: they wait at a barrier of the test runners (tests/support/runners.py, MMC_TEST_WAIT_FOR) for a third
partner, which the test adds only once it has seen both there. Before that, the test SIGKILLs one of the
two nodes (a spot instance taken back): its task's trial crashes, and the task is started again
(MMC_TASK_RESTARTS) on a node the autoscaler starts in place of the dead one, while the rest of the sweep
goes on. The run ends with every task finished once, the tables those of the same tasks run one after
another in one process, and the autoscaler removes the idle nodes: the cluster is its head alone again.
(Without a node for it, a crashed task fails at once: test_multinode.py.)
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator import vocab
from orchestrator.graph.dag import build_graph
from orchestrator.results import tables
from orchestrator.run.node_types import read_node_types
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.storage.layout import Storage, SweepLayout
from tests.conftest import REPO, write_spec
from tests.support import runners
from tests.support.runners import WAIT_ENV, arrivals, hook_env, partners, release
from tests.support import autoscaling_cluster as fake
from tests.support.processes import ended, output, start_logged, wait_for
from tests.support.reference import assert_same_tables, one_process_tables

GPU_TASK = {"cpus": 1, "gpus": 1}
# 2 pretrain, 1 finetune, 2 path evaluations; every task on a GPU node; no MLflow (not what is tested)
SPEC = {"cue_proportions": [0.0, 0.9], "finetune": {"methods": ["naive"]},
        "paths": {"pairs": ["cue~nocue", "pretrained~ft"], "kinds": ["linear"], "alignments": []},
        "resources": {kind: GPU_TASK for kind in vocab.TASK_KINDS}, "max_concurrent": None,
        "mlflow": {"enabled": False}}
CLI_TIMEOUT_S = 300
SYNTHETIC = runners.name("synthetic")
WAIT_S = 180
RESTARTED = re.compile(r"(pretrain-\w+): its trial crashed \((.*)\); started again \(1 of MMC_TASK_RESTARTS=2\)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The autoscaling cluster; its nodes' workers hold every pretraining task until three have arrived."""
    events = tmp_path_factory.mktemp("events")
    c = fake.start_cluster(hook_env(events, **{WAIT_ENV: "pretrain:3"}))
    c.events = events
    try:
        yield c
    finally:
        fake.stop_cluster(c)


def cli(cluster, spec: Path, *args: str, popen: bool = False):
    """`python -m orchestrator run SPEC --no-report --runner tests.support.runners:synthetic --address CLUSTER
    ARGS`; popen: started, its output to a file."""
    cmd = [sys.executable, "-m", "orchestrator", "run", str(spec), "--no-report", "--runner", SYNTHETIC,
           "--address", cluster.address, *args]
    if popen:
        return start_logged(cmd, cluster.env, REPO, cluster.base, spec.stem)
    return subprocess.run(cmd, cwd=REPO, env=cluster.env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


@pytest.mark.slow
def test_a_gpu_sweep_scales_a_cluster_from_zero_and_a_task_on_a_killed_node_starts_again_on_a_new_one(
        cluster, tmp_path):
    spec = write_spec(tmp_path, "auto", storage=str(tmp_path / "runs"), **SPEC)
    graph = build_graph(load_spec(spec))
    layout = SweepLayout(Storage(str(tmp_path / "runs")), "auto")
    pretrains = sorted(t for t, task in graph.tasks.items() if task.kind == "pretrain")
    assert cluster.node_ids() == set()          # the head alone: no GPU anywhere yet

    t0 = time.time()
    proc = cli(cluster, spec, popen=True)
    with ended(proc, CLI_TIMEOUT_S):
        # accepted, and the autoscaler starts two GPU nodes: both pretraining tasks run at once
        held = wait_for(lambda: len(arrivals(cluster.events, layout.root, "pretrain")) == 2, proc,
                        "both pretraining tasks were running at once", WAIT_S, poll_s=0.2, context=cluster.log_tail)
        nodes = cluster.node_ids()
        assert held and len(nodes) == 2, nodes
        t1 = time.time()
        victim = sorted(nodes)[0]
        cluster.kill_node(victim)              # a node lost mid-task (a spot instance taken back)
        restart = wait_for(lambda: RESTARTED.search(output(proc)), proc, "the task on the killed node started again",
                           WAIT_S, poll_s=0.2, context=cluster.log_tail)
        release(cluster.events, layout.root, "pretrain")    # both go on: the survivor, and the restarted one
    out = output(proc)
    t2 = time.time()
    assert proc.returncode == 0, out[-3000:]
    restarted = restart.group(1)
    assert restarted in pretrains and "actor" in restart.group(2).lower(), out[-3000:]    # why, in Ray's words
    assert "its autoscaler can start gpu_worker (CPU 1, GPU 1; 0-2 nodes)" in out, out[-3000:]
    assert "The sweep asks it for pretrain: up to 2 at once x {CPU 1, GPU 1}" in out, out[-3000:]
    assert re.search(r"\| cluster [23] nodes, [12] CPUs, [12] GPUs", out), out[-3000:]   # the nodes, as they join
    assert "Adding 2 node(s) of type gpu_worker" in cluster.monitor_log()
    assert "failed 1" not in out and "Rerun the same command" not in out, out[-3000:]

    tasks = tables.read_table(layout, "tasks")
    assert sorted(tasks["task_id"]) == sorted(graph.tasks), tasks["task_id"].tolist()   # each exactly once
    assert set(tasks["status"]) == {"finished"}
    assert tasks.set_index("task_id")["restarts"].to_dict() == {t: int(t == restarted) for t in graph.tasks}
    assert partners(cluster.events)[restarted] == 3       # it ran to the end after the barrier's release
    (tmp_path / "single").mkdir()
    single = one_process_tables(write_spec(tmp_path / "single", "auto", **{**SPEC, "resources": {}}),
                                tmp_path / "single" / "runs", SYNTHETIC)
    assert_same_tables(layout, single, rtol=1e-9, atol=1e-12)

    # the autoscaler gives up the dead node and removes the idle ones (the restarted task ran on the survivor, once
    # it was free, or on a node started in the dead one's place, whichever came first)
    wait_for(lambda: not cluster.node_ids() and victim in cluster.terminated() and
             "Removing 1 nodes of type gpu_worker (idle)" in cluster.monitor_log(),
             None, "the cluster scaled back to its head", 120, poll_s=0.2, context=cluster.log_tail)
    print(f"\nboth tasks held after {t1 - t0:.0f} s; the restarted one and the rest done {t2 - t1:.0f} s after the kill; "
          f"scaled back to the head {time.time() - t2:.0f} s later")


def test_what_no_node_type_could_run_is_refused_naming_the_node_types(cluster, tmp_path):
    """Two GPUs per task: no node type has them. Refused at once (no wait), the node types named, nothing
    written, no node started."""
    spec = write_spec(tmp_path, "toobig", storage=str(tmp_path / "runs"),
                      **{**SPEC, "resources": {"pretrain": {"cpus": 1, "gpus": 2}}})
    start = time.time()
    out = cli(cluster, spec, "--autoscaler-config", str(cluster.config_file))
    assert out.returncode == 2, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert ("the cluster cannot run this sweep, even with every node its autoscaler can start (node types "
            "considered: ray.head.default (CPU 0; the head), gpu_worker (CPU 1, GPU 1; 0-2 nodes))") in out.stderr
    assert "`resources.pretrain.gpus`: 2 per worker but the largest node has 1; use at most 1" in out.stderr
    assert time.time() - start < 120 and "waiting for nodes" not in out.stdout
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- no cluster needed

def _shape(types) -> tuple:
    head = next(t for t in types.types if t.head)
    return (head.amounts.get("CPU"), [(t.amounts.get("GPU", 0) >= 1, t.min_workers, t.max_workers >= 2)
                                      for t in types.workers])


def test_the_shipped_cluster_configs_have_the_tested_shape(tmp_path):
    """cluster/cluster.yaml and cluster/rayjob.yaml: a head that runs no tasks and one GPU worker type
    that starts at zero nodes and may grow, as the autoscaling test's cluster."""
    tested = tmp_path / "tested.json"
    tested.write_text(__import__("json").dumps(fake.config("127.0.0.1:1")))
    want = _shape(read_node_types(tested))
    assert want == (0.0, [(True, 0, True)])
    for shipped in ("cluster/cluster.yaml", "cluster/rayjob.yaml"):
        types = read_node_types(REPO / shipped)
        assert _shape(types) == want, (shipped, types.describe())
        assert types.complete, shipped     # what a worker provides is written out, not left to the cloud



def test_the_shipped_cluster_launcher_config_is_one_ray_up_accepts():
    """cluster/cluster.yaml against Ray's own launcher schema, filled out with the provider's defaults as
    `ray up` does (`prepare_config`, `validate_config`): a misspelt key fails here, not on the user's cloud."""
    import yaml
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(yaml.safe_load((REPO / "cluster" / "cluster.yaml").read_text())))

def test_the_shipped_cluster_configs_ship_the_code_alone_and_install_the_s3_lock():
    """What `ray job submit` and `ray up` copy to the nodes leaves out a dataset downloaded into the checkout
    (Ray refuses a package over 100 MiB; CIFAR-10 alone is 163 MiB), the local venv and results; the nodes
    install the `[s3]` extra the sweep lock on S3 needs."""
    import yaml

    env = yaml.safe_load((REPO / "cluster" / "runtime_env.yaml").read_text())
    assert {"/data", "/.venv", "/mmc-runs", "/.git"} <= set(env["excludes"])
    job = yaml.safe_load(yaml.safe_load((REPO / "cluster" / "rayjob.yaml").read_text())["spec"]["runtimeEnvYAML"])
    stop_wait = {env["env_vars"]["RAY_JOB_STOP_WAIT_TIME_S"], job["env_vars"]["RAY_JOB_STOP_WAIT_TIME_S"]}
    assert len(stop_wait) == 1 and int(stop_wait.pop()) >= 30   # a stopped driver records and compacts first
    config = yaml.safe_load((REPO / "cluster" / "cluster.yaml").read_text())
    assert {"data", ".venv", "mmc-runs", ".git"} <= set(config["rsync_exclude"])
    assert any("[s3]" in command for command in config["setup_commands"])
