"""Does every node of the Ray cluster see the sweep's local paths as the driver does?

On a cluster each node has its own disk. Tasks run on any node; they write checkpoints and result
fragments under `storage` and read their dataset from `data.root` on the node they run on, and the
driver reads everything back on its own node. A local path that exists on the driver's node only
(the default `storage: ./mmc-runs`, a dataset downloaded on the head) would make tasks fail far
from the cause, so `check_shared_paths` looks before any task runs:

- `storage` (a local one) and a local MLflow store (`mlflow.tracking_uri` = sqlite:///, file:// or a
  path): the driver writes a probe file holding a random token into the directory; one tiny Ray
  task per alive node (0 CPUs, pinned with a hard node affinity) reads it back and compares the
  token; for `storage` the node also creates and deletes a file of its own (tasks write there).
- `data.root` (a local one, for datasets that read files): each node checks that it has the
  dataset's files with the driver's sizes. Nothing is written: dataset directories are often
  read-only, and a copy at the same path on every node is as good as a shared mount.

Object-store URIs (s3://, gs://, ...) are the same from everywhere and are not checked; neither is
anything on a single-node cluster. Probes are removed afterwards (directories created for them too),
the nodes write nothing that outlives the check, and the whole check is bounded by a timeout.
"""
from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from orchestrator import knobs
from orchestrator.uris import UriError, is_remote, local_path_of

PROBE_PREFIX = ".mmc-visibility-"
MAX_NODES_SHOWN = 5


@dataclass(frozen=True)
class Target:
    """One local directory that every node must see: `files` empty: a probe; else (path, size) pairs."""

    key: str                                   # the spec key: storage, data.root, mlflow.tracking_uri
    value: str                                 # as the spec gives it
    directory: str                             # absolute local directory
    files: tuple[tuple[str, int], ...] = ()    # read-only check: files each node must have, with sizes
    writable: bool = False                     # probe check: the node must also be able to create files
    dataset: str | None = None                 # data.root: the dataset whose files are checked


# ---------------------------------------------------------------- which paths

def targets(spec, layout) -> list[Target]:
    """The local paths of `spec` that tasks or later drivers use from any node."""
    found: list[Target] = []
    if layout.storage.is_local:
        found.append(Target("storage", str(spec.storage), str(layout.storage.local_path(layout.root)),
                            writable=True))
    root, dataset = spec.data.root, spec.data.dataset
    if root and local_path(root) is not None:
        directory = str(local_path(root))
        files = tuple((path, os.path.getsize(path)) for path in dataset_files(dataset, directory))
        if files:   # a built-in dataset (digits) reads no files: nothing to check
            found.append(Target("data.root", str(root), directory, files=files, dataset=dataset))
    uri = spec.mlflow.tracking_uri if spec.mlflow.enabled else None
    store = mlflow_store_dir(uri) if uri else None
    if store is not None:   # unset: the default store lives in the sweep directory (checked as `storage`)
        found.append(Target("mlflow.tracking_uri", uri, store))
    return found


def local_path(value: str) -> Path | None:
    """The absolute local path of a path or file:// URI; None for any other URI (s3://, gs://, ...)."""
    try:
        local = local_path_of(value)
    except UriError:
        return None
    return None if local is None else Path(os.path.abspath(os.path.expanduser(local)))


def mlflow_store_dir(uri: str) -> str | None:
    """The local directory of an MLflow store on a file system (sqlite:///, file://, a path), else None."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):].split("?", 1)[0]   # sqlite:////abs/db, sqlite:///relative/db
        if not path or path == ":memory:":
            return None
        return str(Path(os.path.abspath(os.path.expanduser(path))).parent)
    if is_remote(uri) or uri in ("databricks", "databricks-uc", "uc"):
        return None   # a tracking server (http(s)://, databricks, ...): reached over the network
    path = local_path(uri)
    return str(path) if path is not None else None


def dataset_files(dataset: str, root: str) -> list[str]:
    """The files a task of `dataset` reads under `root` that exist on this node (none for built-ins)."""
    from tasks.datasets import dataset_files as files_of

    return [str(p) for p in files_of(dataset, root) if p.is_file()]


# ---------------------------------------------------------------- what a node sees

def read_back(checks: list[dict]) -> dict:
    """Runs on one node: what it sees of every check (never raises, writes nothing that stays)."""
    import ray

    node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
    answers = []
    for check in checks:
        if check.get("skip"):   # the driver could not even write its probe (reported there)
            answers.append(None)
            continue
        try:
            answers.append(_see_files(check["files"]) if check.get("files") else _see_probe(check, node_id))
        except Exception as exc:  # noqa: BLE001 - report, never crash the probe
            answers.append(f"{type(exc).__name__}: {exc}")
    return {"host": socket.gethostname(), "answers": answers}


def _see_probe(check: dict, node_id: str) -> str | None:
    directory, path = check["directory"], check["path"]
    if not os.path.isdir(directory):
        return "the directory does not exist there"
    try:
        with open(path, "rb") as f:
            seen = f.read(256).decode("utf-8", "replace").strip()
    except FileNotFoundError:
        return "the directory exists there but is another one (the driver's probe file is not in it)"
    except OSError as exc:
        return f"cannot read the driver's probe file there ({type(exc).__name__}: {exc.strerror or exc})"
    if seen != check["token"]:
        return "the driver's probe file there holds something else (another directory or a stale cache)"
    if check.get("writable"):
        mine = f"{path}-{node_id[:12]}"
        try:
            fd = os.open(mine, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
        except OSError as exc:
            return f"the directory is there but this node cannot create files in it ({exc.strerror or exc})"
        finally:
            try:
                os.unlink(mine)
            except OSError:
                pass
    return None


def _see_files(files: list[tuple[str, int]]) -> str | None:
    wrong = []
    for path, size in files:
        try:
            have = os.path.getsize(path)
        except OSError:
            wrong.append(f"{path} is missing")
            continue
        if have != size:
            wrong.append(f"{path} has {have} bytes, not {size}")
    if not wrong:
        return None
    return wrong[0] + (f" (and {len(wrong) - 1} more of its {len(files)} files)" if len(wrong) > 1 else "")


# ---------------------------------------------------------------- the check

def check_shared_paths(spec, layout, *, timeout_s: float | None = None) -> list[str]:
    """Problems, one per spec key, with the nodes that do not see it and the fix; [] if all is well.

    Needs a connected Ray (`ray.init`); a single-node cluster or a sweep without local paths is
    not checked."""
    import ray

    if not ray.is_initialized():
        return []
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) < 2:
        return []
    wanted = targets(spec, layout)
    if not wanted:
        return []
    if timeout_s is None:
        timeout_s = knobs.read(knobs.VISIBILITY_TIMEOUT_S)
    return check_targets(wanted, nodes, timeout_s=timeout_s, driver_node=ray.get_runtime_context().get_node_id())


def check_targets(wanted: list[Target], nodes: list[dict], *, timeout_s: float, driver_node: str | None) -> list[str]:
    token = uuid.uuid4().hex
    probe_name = f"{PROBE_PREFIX}{token[:16]}"
    written: list[str] = []
    created: list[str] = []
    failures: dict[str, list[tuple[dict, str]]] = {t.key: [] for t in wanted}   # key -> [(node, why)]
    problems: list[str] = []
    try:
        checks = []
        for target in wanted:
            if target.files:
                checks.append({"files": list(target.files)})
                continue
            path = os.path.join(target.directory, probe_name)
            try:
                created += _make_dirs(Path(target.directory))
                with open(path, "x") as f:
                    f.write(token + "\n")
                written.append(path)
            except OSError as exc:
                problems.append(f"`{target.key}`: cannot write a probe file into {target.directory} on the "
                                f"driver's node to check that every node sees it ({type(exc).__name__}: {exc})")
                checks.append({"skip": True})
                continue
            checks.append({"directory": target.directory, "path": path, "token": token,
                           "writable": target.writable})
        answers = _ask_every_node(nodes, checks, timeout_s)
    finally:
        for path in written:
            try:
                os.unlink(path)
            except OSError:
                pass
        for directory in reversed(created):
            try:
                os.rmdir(directory)   # only if still empty
            except OSError:
                pass
    unreachable = []
    for node in nodes:
        answer = answers.get(node["NodeID"])
        if isinstance(answer, str):   # the probe task did not come back
            unreachable.append((node, answer))
            continue
        if answer is None:
            continue   # the node left the cluster during the check
        for target, check, why in zip(wanted, checks, answer["answers"]):
            if why is not None and not check.get("skip"):
                failures[target.key].append((node | {"_host": answer["host"]}, why))
    driver = next((n for n in nodes if n["NodeID"] == driver_node), None)
    for target in wanted:
        if failures[target.key]:
            problems.append(_message(target, failures[target.key], driver))
    if unreachable:
        keys = ", ".join(f"`{t.key}`" for t in wanted)
        problems.append(f"could not check that {keys} {'is' if len(wanted) == 1 else 'are'} reachable from every "
                        f"node of the Ray cluster:\n{_node_lines(unreachable)}\n"
                        f"Check the node with `ray status`, or raise {knobs.VISIBILITY_TIMEOUT_S.name} (now {timeout_s:g} s).")
    return problems


def _make_dirs(path: Path) -> list[str]:
    """Create `path` and missing parents; returns the created ones, outermost first."""
    missing = []
    for p in (path, *path.parents):
        if p.exists():
            break
        missing.append(p)
    path.mkdir(parents=True, exist_ok=True)
    return [str(p) for p in reversed(missing)]


def _ask_every_node(nodes: list[dict], checks: list[dict], timeout_s: float) -> dict[str, dict | str | None]:
    """node id -> the node's answer; a string when its task failed or timed out; None if the node left
    the cluster meanwhile (nothing to check there any more)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(read_back)
    refs = {node["NodeID"]: probe.options(
        num_cpus=0, max_retries=0, name="mmc-visibility-probe",
        scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(checks)
        for node in nodes}
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
    ready_set = set(ready)
    answers: dict[str, dict | str | None] = {}
    for node_id, ref in refs.items():
        if ref not in ready_set:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass
            answers[node_id] = f"its probe task did not finish within {timeout_s:g} s"
            continue
        try:
            answers[node_id] = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - RayError, TaskUnschedulableError, WorkerCrashedError, ...
            first = (str(exc).strip().splitlines() or [""])[0]
            answers[node_id] = f"its probe task failed: {type(exc).__name__}: {first}"
    if any(isinstance(a, str) for a in answers.values()):
        alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
        answers = {node_id: a if node_id in alive else None for node_id, a in answers.items()}
    return answers


# ---------------------------------------------------------------- the messages

WHY = {
    "storage": "Tasks run on any node and write their checkpoints and results under `storage`; the tasks "
               "that follow and the driver read them back on their own nodes, so every node must see the "
               "same directory.",
    "data.root": "Every task loads the dataset from `data.root` on the node it runs on.",
    "mlflow.tracking_uri": "The driver logs every task there, and the driver of a later run (a rerun, a "
                           "`ray job submit`) may start on another node and must find the runs logged so far.",
}


def _fix(target: Target) -> str:
    if target.key == "storage":
        return ("Fix: give `storage` an object store (`storage: s3://BUCKET/mmc-runs` or `gs://BUCKET/mmc-runs`, "
                "or `--storage s3://BUCKET/mmc-runs`), or a directory mounted at the same path on every node "
                "(an NFS export such as /mnt/nfs/mmc-runs).")
    if target.key == "data.root":
        return ("Fix: put the dataset in a directory mounted at the same path on every node (an NFS export), "
                f"or download it to the same path on each node (`mmc-sweep data download {target.dataset} --root "
                f"{target.directory}`).")
    return ("Fix: log to an MLflow tracking server that every node reaches (`--tracking-uri http://HOST:5000`, "
            "started with `mlflow server --backend-store-uri ...`), or leave `mlflow.tracking_uri` unset to keep "
            "the store in the sweep directory of a shared `storage`.")


def _message(target: Target, failures: list[tuple[dict, str]], driver: dict | None) -> str:
    on_driver = f" on its node {describe_node(driver)}" if driver is not None else ""
    if target.key == "storage":
        what = (f"`storage` must be reachable from every node of the Ray cluster, but the sweep directory "
                f"{target.directory}, which the driver writes{on_driver}, is not visible from:")
    elif target.key == "data.root":
        what = (f"`data.root` must hold the same dataset on every node of the Ray cluster, but the dataset files "
                f"under {target.directory}, as the driver sees them{on_driver}, are not there on:")
    else:
        what = (f"`mlflow.tracking_uri` must be reachable from every node of the Ray cluster, but "
                f"{target.directory}, the directory of the MLflow store {target.value}, which the driver writes"
                f"{on_driver}, is not visible from:")
    return f"{what}\n{_node_lines(failures)}\n{WHY[target.key]}\n{_fix(target)}"


def _node_lines(failures: list[tuple[dict, str]]) -> str:
    lines = [f"  - node {describe_node(node)}: {why}" for node, why in failures[:MAX_NODES_SHOWN]]
    if len(failures) > MAX_NODES_SHOWN:
        lines.append(f"  - ... and {len(failures) - MAX_NODES_SHOWN} more nodes")
    return "\n".join(lines)


def describe_node(node: dict) -> str:
    """`10.0.0.12 (host worker-1, node id 5eaa4b048025)`: the IP, the host name and the start of the id."""
    host = node.get("_host") or node.get("NodeManagerHostname") or "?"
    return f"{node.get('NodeManagerAddress', '?')} (host {host}, node id {node['NodeID'][:12]})"
