"""Checks before any work: storage, dataset files, endpoints, the stored spec, the cluster.

Each check raises `SweepError` (the CLI exits 2) with a message that names the key or flag, the
problem and the fix, and leaves nothing behind: directories a probe created are removed, secrets
in URIs are redacted. Network endpoints (a Ray address, an MLflow tracking server) must answer
within `knobs.CONNECT_TIMEOUT_S` (`MMC_CONNECT_TIMEOUT_S`, 10 s by default).

Why one module: every check before work, in the order a run makes them, each leaving nothing behind; a
reader looking for why a run was refused finds every rule here.
"""
from __future__ import annotations

from collections.abc import Collection
import errno
import http.client
import math
import os
import socket
import ssl
import time
import urllib.parse
import uuid

import pyarrow.fs as pafs

from orchestrator import knobs
from orchestrator.spec import sweep_spec as spec_lib
from orchestrator.errors import SweepError
from orchestrator.messages import first_line, logger
from orchestrator.storage.layout import LinkError, Storage, SweepLayout
from orchestrator.storage.read_only import refused
from orchestrator.uris import after_scheme, is_remote, redact
from orchestrator.spec.sweep_spec import SweepSpec
from orchestrator.spec.yaml_io import YamlError, decode, parse_yaml

_LOG = logger(__name__)
MAX_SPEC_BYTES = 1_000_000


def connect_timeout_s() -> float:
    return knobs.read(knobs.CONNECT_TIMEOUT_S)


# ----- storage -----

def open_layout(spec: SweepSpec) -> SweepLayout:
    """The sweep's layout on its storage; a storage URI that pyarrow cannot open is a SweepError."""
    try:
        return SweepLayout(Storage(spec.storage), spec.name)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for bad URIs
        problem = object_store_problem(str(spec.storage), exc) if is_remote(str(spec.storage)) else None
        if problem is not None:
            raise SweepError(f"storage {redact(spec.storage)}: {problem}") from None
        reason = redact((str(exc).strip().splitlines() or [""])[0])   # pyarrow's first line; the rest is a search log
        raise SweepError(f"storage {redact(spec.storage)!r} cannot be opened: {type(exc).__name__}: {reason}. "
                         "Give a local directory or a pyarrow.fs URI (s3://bucket/runs, gs://bucket/runs, "
                         "file:///abs/path) in `storage` or with --storage.") from None


def new_directories(layout: SweepLayout) -> list[str]:
    """The directories up to the sweep root that do not exist yet, outermost first."""
    storage = layout.storage
    if storage.is_object_store:   # no directories there (a prefix exists once an object is under it)
        return []
    try:
        local = storage.local_path(layout.root)
        if local is None:   # other remote file systems: only the root and the sweep directory are ours
            return [path for path in (storage.root, layout.root) if not storage.exists(path)]
        missing = []
        for path in (local, *local.parents):
            if path.exists():
                break
            missing.append(str(path))
        return missing[::-1]
    except Exception:  # noqa: BLE001 - check_storage reports an unreachable storage
        return []


def remove_new_directories(layout: SweepLayout, created: list[str]) -> None:
    """Undo `created` directories that are still empty (a run stopped before any work)."""
    storage = layout.storage
    for path in reversed(created):
        try:
            if storage.is_local:
                os.rmdir(path)      # only ever removes an empty directory
            elif storage.exists(path) and not storage.listdir(path):
                storage.delete(path)
        except Exception:  # noqa: BLE001 - best effort (not empty, already gone); never mask the real error
            pass


def _endpoint(storage: Storage) -> str:
    """Where an S3 file system sends its requests (AWS itself when no endpoint is set)."""
    try:
        options = storage.fs.__reduce__()[1][0]
    except Exception:  # noqa: BLE001 - not an S3 file system
        return ""
    endpoint = options.get("endpoint_override") if isinstance(options, dict) else None
    return redact(endpoint) if endpoint else f"AWS ({options.get('region') or 'default region'})"


def object_store_problem(storage: Storage | str, exc: BaseException) -> str | None:
    """One sentence with the fix for an object store's refusal (credentials, bucket, endpoint), or None.
    `storage`: the Storage, or the storage URI where it could not even be opened."""
    text = str(exc)
    if isinstance(storage, str):
        bucket = after_scheme(storage).lstrip("/").split("?", 1)[0].rsplit("@", 1)[-1].split("/", 1)[0]
        where = ""
    else:
        bucket = storage.root.split("/", 1)[0]
        where = f" at {_endpoint(storage)}" if storage.base_uri.startswith("s3") else ""
    if any(code in text for code in ("ACCESS_DENIED", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                                     "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH", "PERMISSION_DENIED",
                                     "UNAUTHENTICATED")):
        return (f"the object store{where} refused the credentials (access denied to bucket `{bucket}`); give a key "
                "allowed to read, write and list it: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) "
                "in the environment of the driver and of every node (GCS: GOOGLE_APPLICATION_CREDENTIALS)")
    if any(code in text for code in ("NO_SUCH_BUCKET", "NoSuchBucket", f"Bucket '{bucket}' not found")):
        return (f"bucket `{bucket}` does not exist{where}; create it (`aws s3 mb s3://{bucket}`, or in the store's "
                "console), or fix the bucket's name in `storage` / --storage")
    if any(code in text for code in ("NETWORK_CONNECTION", "curlCode", "Could not resolve", "Couldn't connect")):
        return (f"the object store{where} does not answer; check the endpoint (AWS_ENDPOINT_URL, or "
                "`?endpoint_override=HOST:PORT&scheme=http` in the storage URI) and the network")
    return None


def _probe_filesystem(storage: Storage) -> pafs.FileSystem:
    """The storage's file system for the first requests: on S3 one attempt each, within the connect
    timeout, so a silent endpoint is reported in seconds (the storage's own file system retries with backoff)."""
    if not isinstance(storage.fs, getattr(pafs, "S3FileSystem", ())):
        return storage.fs
    timeout = connect_timeout_s()
    options = {**storage.fs.__reduce__()[1][0], "connect_timeout": timeout, "request_timeout": timeout}
    try:
        return pafs.S3FileSystem(**options, retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1))
    except TypeError:   # an option this pyarrow does not take back
        return storage.fs


def _check_bucket(layout: SweepLayout) -> None:
    """On an object store: the bucket exists and the credentials may list it (before anything is written)."""
    storage = layout.storage
    fs = _probe_filesystem(storage)
    bucket = storage.root.split("/", 1)[0]
    try:
        missing = fs.get_file_info(bucket).type == pafs.FileType.NotFound
        if not missing:   # a LIST: refused with wrong credentials, as every later request would be
            fs.get_file_info(pafs.FileSelector(storage.root, allow_not_found=True))
    except OSError as exc:      # an answer no rule names (a 5xx, a redirect to another region): said as the store said it
        problem = object_store_problem(storage, exc) or (
            f"the object store refused to list the bucket ({redact(first_line(exc))[:300]}); check the endpoint, the "
            "region and the credentials, or try again if the store is busy")
        raise SweepError(f"storage {storage.shown(storage.root)}: {problem}") from None
    if missing:
        problem = object_store_problem(storage, OSError("NoSuchBucket"))
        raise SweepError(f"storage {storage.shown(storage.root)}: {problem}")


RUN_WRITES = "a run writes its lock, the tasks' outputs and the results there"


def check_storage(layout: SweepLayout, writes: str = RUN_WRITES) -> None:
    """Fail if the storage is missing, unwritable or full (on an object store: its bucket missing, its
    credentials refused, its endpoint silent); leaves nothing behind. `writes`: what the command writes
    there, for the message of a read-only storage (`orchestrator.storage.read_only`)."""
    if layout.storage.is_object_store:
        _check_bucket(layout)
    created = new_directories(layout)
    try:
        if layout.storage.exists(layout.root) and not layout.storage.fs.get_file_info(layout.root).type.name \
                == "Directory":
            raise SweepError(f"storage: {redact(layout.root)} exists and is not a directory; give another "
                             "`storage` or sweep `name`")
        probe = layout.storage.join(layout.root, f"probe-{uuid.uuid4().hex}")
        layout.storage.write_bytes(probe, b"mmc-sweep storage probe\n")
        layout.storage.delete(probe)
    except SweepError:
        raise
    except LinkError as exc:   # the sweep directory (or a directory in it) is a link
        raise SweepError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001
        problem = object_store_problem(layout.storage, exc) if layout.storage.is_object_store else None
        if problem is not None:
            raise SweepError(f"storage {layout.storage.shown(layout.root)}: {problem}") from None
        read_only = refused(layout.storage.shown(layout.root), exc, writes)
        if read_only is not None:
            raise read_only from None
        raise SweepError(f"storage `{layout.storage.shown(layout.root)}` is not writable: {type(exc).__name__}: "
                         f"{redact(str(exc))}. Give a writable local directory or a pyarrow.fs URI (s3://, gs://, "
                         "file://) in `storage` or with --storage.") from None
    finally:
        remove_new_directories(layout, created)


def sweep_dirs(layout: SweepLayout) -> list[str]:
    """The directories of a sweep that runs write into (see `layout`)."""
    from orchestrator import vocab
    return [layout.report_dir(), layout.results_dir(), layout.manifests_dir(),
            *(layout.table_dir(t) for t in vocab.TABLES), layout.storage.join(layout.root, "tasks"),
            *(layout.storage.join(layout.root, "tasks", k) for k in vocab.TASK_KINDS),
            layout.storage.join(layout.root, "ray")]


def check_links(layout: SweepLayout) -> None:
    """No symbolic link anywhere in the sweep directory (the directory itself included): a link where
    a directory or file of the sweep belongs could lead writes and deletions (report, results, tasks,
    lock, MLflow store and artifacts, Ray's files) outside the storage. Refused before any work, naming
    the link; `Storage` refuses every path through one as well (`LinkError`)."""
    links = layout.storage.find_links(layout.root)
    if links:
        raise SweepError(str(LinkError(links[0])))


def check_report_dir(layout: SweepLayout) -> None:
    """Every directory of the sweep that runs write into (`report/`, `results/`, `tasks/`, `ray/`,
    ...) must be a directory if it exists; a file (or FIFO, device) there is refused before any work,
    instead of failing when the first result is written. No link anywhere in the sweep (`check_links`)."""
    check_links(layout)
    storage = layout.storage
    for path in sweep_dirs(layout):
        try:
            kind = storage.file_info(path).type
        except OSError:
            continue   # under a file: its parent is reported
        if kind not in (pafs.FileType.NotFound, pafs.FileType.Directory):
            raise SweepError(f"{redact(path)} is not a directory, but mmc-sweep writes into a directory there; move "
                             "it away (or give another `storage` or sweep `name`)")


# ----- data -----

def check_data(spec: SweepSpec) -> None:
    """Fail if a real dataset's files are not under `data.root` (only presence; tasks parse them
    through the restricted unpickler)."""
    from tasks.datasets import missing_files

    root = spec.data_root
    if root is None:
        return   # the built-in dataset (a real one without a root is a spec error)
    missing = [str(p) for p in missing_files(spec.dataset, root)]
    if missing:
        shown = "\n  - ".join(missing[:6]) + (f"\n  ... and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise SweepError(f"dataset `{spec.dataset}` is not under data.root {root}; missing:\n  - {shown}\n"
                         f"Fetch it with `mmc-sweep data download {spec.dataset} --root {root}`.")


# ----- the stored spec -----

def stored_spec(layout: SweepLayout) -> dict | None:
    """The resolved spec stored with the sweep (None for a new sweep); SweepError when it is unreadable."""
    path = layout.spec_file()
    if not layout.storage.exists(path):
        return None
    if not layout.storage.is_file(path):
        raise SweepError(f"the stored spec {redact(path)} is not a regular file (a directory, FIFO or device); move "
                         "it away (finished tasks are kept), or use another sweep `name`")
    try:
        raw = parse_yaml(decode(layout.storage.read_bytes(path, max_bytes=MAX_SPEC_BYTES), path, "stored spec"))
    except (OSError, YamlError) as exc:
        reason = redact(str(exc).replace(f"the stored spec {path} ", "").replace(f"{path} ", ""))
        problem = reason if reason.startswith("is ") else f"is unreadable ({reason})"
        raise SweepError(f"the stored spec {redact(path)} {problem}; rerun with --new-version to replace it (finished "
                         "tasks are kept), or use another sweep `name`") from None
    if not isinstance(raw, dict):
        raise SweepError(f"the stored spec {redact(path)} is not a mapping; rerun with --new-version to replace it, or "
                         "use another sweep `name`")
    return raw


def check_spec_unchanged(layout: SweepLayout, spec: SweepSpec, new_version: bool, unread: Collection[str] = ()) -> list[str]:
    """The settings that differ from the sweep's stored spec; SweepError unless `new_version`.
    Where and how a sweep runs (storage, resources, max_concurrent, MLflow) may always change.
    With `new_version`, an unreadable stored spec (a regular file) is replaced too (it is archived).
    `unread`: the keys set that no planned task reads (`dag.check_settings_read`): a change to them alone
    changes no result, and the refusal says so (the stored spec would still say another value)."""
    try:
        old = stored_spec(layout)
    except SweepError:
        if new_version and layout.storage.is_file(layout.spec_file()):
            return ["spec.yaml: <unreadable> -> this spec"]
        raise
    if old is None:
        return []
    changes = spec_lib.differences(old, spec.resolved)
    if changes and not new_version:
        shown = "\n  - ".join(changes[:20]) + (f"\n  ... and {len(changes) - 20} more" if len(changes) > 20 else "")
        idle = [c.split(":", 1)[0] for c in changes if c.split(":", 1)[0] in unread]
        one = len(idle) == 1
        note = "" if not idle else f"\nNo planned task reads {', '.join(f'`{k}`' for k in idle)}: " + (
            f"{'this change changes' if one else 'these changes change'} no result; leave {'it' if one else 'them'} as "
            f"the stored spec has {'it' if one else 'them'}, or record {'it' if one else 'them'} with --new-version (no "
            "task runs again)." if len(idle) == len(changes) else
            f"{'that change' if one else 'those changes'} alone would change no result.")
        raise SweepError(f"sweep `{spec.name}` in {redact(layout.root)} was run with other settings; this spec "
                         f"changes:\n  - {shown}\nA sweep directory holds the results of one spec. Give the spec "
                         "another `name`, or rerun with --new-version to make this spec the sweep's new version "
                         f"(finished tasks with unchanged settings are reused; reports cover the new plan only).{note}")
    return changes


# ----- endpoints -----

DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


def check_tracking_server(uri: str | None) -> None:
    """An MLflow tracking server (http/https) must answer an HTTP request, and a database server
    (postgresql/mysql/mssql) accept a connection, within the connect timeout."""
    if not uri:
        return
    try:
        parsed = urllib.parse.urlsplit(uri)
        scheme = parsed.scheme.lower().split("+", 1)[0]
        host, port = parsed.hostname, parsed.port
    except ValueError as exc:
        raise SweepError(f"--tracking-uri / `mlflow.tracking_uri` {redact(uri)!r} is not a valid URI ({exc})") from None
    if scheme not in ("http", "https", *DATABASE_PORTS):
        return
    what = f"--tracking-uri / `mlflow.tracking_uri` {redact(uri)!r}"
    if not host:
        raise SweepError(f"{what} names no host; give e.g. http://127.0.0.1:5000")
    timeout = connect_timeout_s()
    try:
        if scheme in DATABASE_PORTS:
            with socket.create_connection((host, port or DATABASE_PORTS[scheme]), timeout=timeout):
                return
        _http_answers(scheme, host, port, parsed.path, timeout)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else getattr(exc, "strerror", None) or type(exc).__name__
        raise SweepError(f"{what} does not answer within {timeout:g} s ({reason}); start the MLflow server, fix the "
                         "URI, or set `mlflow.enabled: false`") from None


def _http_answers(scheme: str, host: str, port: int | None, path: str, timeout: float) -> None:
    """GET <path>/health and read the status line, all within `timeout` seconds; any HTTP status
    (401, 404, ...) and any TLS certificate problem count as an answer (MLflow reports those itself)."""
    deadline = time.monotonic() + timeout
    if scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE   # reachability only; MLflow verifies
        conn = http.client.HTTPSConnection(host, port or 443, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port or 80, timeout=timeout)
    try:
        conn.connect()
        conn.sock.settimeout(max(0.1, deadline - time.monotonic()))
        conn.request("GET", path.rstrip("/") + "/health", headers={"Connection": "close"})
        conn.getresponse().read(1024)
    finally:
        conn.close()


_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"   # + empty SETTINGS


def _grpc_answers(host: str, port: int, timeout: float) -> None:
    """Ray's GCS and client server speak gRPC: one answers the HTTP/2 preface with a SETTINGS frame
    at once. A port that accepts and stays silent (not Ray, a hung node) would keep `ray.init`
    retrying for minutes; it fails here within `timeout`. With TLS (`RAY_USE_TLS`) only the
    connection is checked."""
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true", "yes"):
            return
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        sock.sendall(_HTTP2_PREFACE)
        header = b""
        while len(header) < 9:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            chunk = sock.recv(9 - len(header))
            if not chunk:
                raise ConnectionError(errno.ECONNRESET, "closed without a gRPC answer")
            header += chunk
        if header[3] != 0x04:   # frame type SETTINGS
            raise ConnectionError(errno.EPROTO, "not a gRPC (Ray) endpoint")


def _address_flag(address: str) -> str:
    return "$RAY_ADDRESS" if address == os.environ.get("RAY_ADDRESS") else "--address"


def check_ray_address(address: str | None) -> None:
    """An explicit Ray address (host:port; a Ray Client's ray:// is refused) must accept a connection within the connect
    timeout, `localhost:6379` too; `auto` and `local` (Ray finds or starts the cluster itself) are left to
    Ray. An http(s):// address is a dashboard's (the Jobs API, where `cluster/submit.sh` sends a sweep), which
    `ray.init` refuses: said at once, with the address a run takes."""
    if not address or address in ("auto", "local"):
        return
    text = address if "://" in address else f"tcp://{address}"
    try:
        parsed = urllib.parse.urlparse(text)
        host, port = parsed.hostname, parsed.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise SweepError(f"{_address_flag(address)} {redact(address)!r} is not host:port")
    if parsed.scheme == "ray":
        raise SweepError(f"{_address_flag(address)} {redact(address)!r} is a Ray Client address, which a sweep cannot "
                         "use (Ray Tune's scheduling of the task graph runs in the driver); run it on a node of the "
                         "cluster with --address host:6379 (or `auto`), or submit it as a job from anywhere: "
                         "RAY_ADDRESS=http://HEAD:8265 cluster/submit.sh SPEC")
    if parsed.scheme in ("http", "https"):
        raise SweepError(f"{_address_flag(address)} {redact(address)!r} is a Ray dashboard's address (the Jobs API): "
                         "a run connects to the cluster itself, host:6379 (`ray start --port`) or `auto` on one of its "
                         "nodes; to send the sweep through the dashboard, submit it as a job: RAY_ADDRESS="
                         f"{redact(address)} cluster/submit.sh SPEC")
    timeout = connect_timeout_s()
    try:
        _grpc_answers(host, port, timeout)
    except (OSError, http.client.HTTPException) as exc:
        raise SweepError(f"{_address_flag(address)} {redact(address)!r}: no Ray cluster answers within {timeout:g} s "
                         f"({'no answer' if isinstance(exc, TimeoutError) else exc.strerror or type(exc).__name__}); "
                         "start it (`ray start --head --dashboard-host=127.0.0.1`), fix the address, or leave "
                         "--address out to run on a local Ray") from None


# ----- the cluster -----

def check_resources(spec: SweepSpec, cluster: dict, kinds: list[str]) -> list[str]:
    """Problems running `spec`'s task `kinds` on a cluster. `cluster` is `ray.cluster_resources()`
    ({"CPU": n, "GPU": n, ...}), optionally with "nodes": a list of such dicts, one per node (else the
    cluster counts as one node). A task is judged by the exact bundles it asks for
    (`capacity.task_bundles`: a data-parallel task's trainer too), each placed whole on one node: what
    fits in no node waits for resources forever."""
    nodes = cluster.get("nodes") or [{k: v for k, v in cluster.items() if k != "nodes"}]
    problems: list[str] = []
    for kind in kinds:
        problems += _kind_problems(kind, spec.resources[kind], cluster, nodes)
    return problems


def _kind_problems(kind: str, r, cluster: dict, nodes: list[dict]) -> list[str]:
    """What keeps a task of `kind` (resources `r`) from ever being placed: a resource the cluster lacks,
    a worker larger than every node, more than the cluster has in all, bundles no nodes hold together."""
    from orchestrator.run import capacity

    field = f"`resources.{kind}"
    if r.gpus > 0 and float(cluster.get("GPU", 0)) == 0:
        return [f"{field}.gpus`: {r.gpus:g} but the cluster has no GPU; set `resources.{kind}.gpus: 0` to run on CPUs"]
    bundles = capacity.task_bundles(kind, r)
    trainer = capacity.TRAINER_CPU if capacity.drives_ray_train(kind, r) else 0.0
    problems = []
    for unit, name, per, share in (("cpus", "CPU", r.cpus, trainer), ("gpus", "GPU", r.gpus, 0.0)):
        node_max = max(float(n.get(name, 0)) for n in nodes)
        total = float(cluster.get(name, 0))
        if per > node_max + capacity.RESOURCE_EPS:
            problems.append(f"{field}.{unit}`: {per:g} per worker but the largest node has "
                            f"{node_max:g}; use at most {node_max:g}")
        elif per * r.workers + share > total + capacity.RESOURCE_EPS:
            problems.append(_too_much(field, r, unit, per, share, total, node_max, lambda most, name=name: (
                capacity.fits_on_nodes(_with_per_worker(bundles, trainer, name, most), nodes))))
    for name, amount in r.custom:   # a missing custom resource would wait forever
        have = float(cluster.get(name, 0))
        if amount * r.workers > have + capacity.RESOURCE_EPS:
            problems.append(f"{field}.custom.{name}`: {r.workers} workers x {amount:g} but the cluster "
                            f"has {have:g} of `{name}`; start nodes with that resource or remove it")
    if not problems and not capacity.fits_on_nodes(bundles, nodes):
        problems.append(_no_placement(field, r, bundles, trainer, nodes))
    return problems


def _with_per_worker(bundles: list[dict], trainer: float, name: str, amount: float) -> list[dict]:
    """`bundles` with `amount` of resource `name` per worker (the trainer's bundle, if any, as it is)."""
    first = 1 if trainer else 0
    return bundles[:first] + [{**b, name: amount} for b in bundles[first:]]


def _too_much(field: str, r, unit: str, per: float, share: float, total: float, node_max: float,
              fits_with) -> str:
    """More of a resource than the cluster has in all; with the trainer's share (why 2 workers x 1 CPU do
    not fit on 2 CPUs) and, where it would fit, the most per worker. `fits_with(per)`: whether the
    task's bundles with `per` of the resource per worker fit on the nodes."""
    if not share:
        return (f"{field}`: {r.workers} workers x {per:g} {unit} = {per * r.workers:g} but the cluster has "
                f"{total:g}; use fewer workers or {unit}")
    most = math.floor((total - share) / r.workers * 1000) / 1000
    fewer = f"at most {most:g} {unit} per worker" if most > 0 and fits_with(most) else f"fewer {unit} per worker"
    return (f"{field}`: {r.workers} workers x {per:g} {unit} + {share:g} for the trainer = "
            f"{per * r.workers + share:g} {unit} but the cluster has {total:g} (its largest node {node_max:g}); "
            f"use fewer workers, {fewer}, or a bigger node")


def _no_placement(field: str, r, bundles: list[dict], trainer: float, nodes: list[dict]) -> str:
    """The bundles fit the cluster's totals, but not its nodes: each bundle needs one node with room for
    all of it (a GPU worker a node with its CPUs and its GPU)."""
    from orchestrator.run.node_types import describe_resources

    worker, shown = bundles[-1], _describe_nodes(nodes, set(bundles[-1]))
    if r.workers == 1:
        return (f"{field}`: a worker of {{{describe_resources(worker)}}} fits on no node (nodes: {shown}); use "
                "fewer cpus or gpus, or a bigger node")
    asked = f"{r.workers} workers x {{{describe_resources(worker)}}}"
    if trainer:
        asked += f" + {{CPU {trainer:g}}} for the trainer"
    return (f"{field}`: {asked} do not fit on the nodes, each bundle whole on one node (nodes: {shown}); use "
            "fewer workers, fewer cpus or gpus per worker, or bigger nodes")


def _describe_nodes(nodes: list[dict], names: set[str], shown: int = 6) -> str:
    """`2 x {CPU 2}, 1 x {CPU 1, GPU 1}`: the nodes by what they have of the resources a task asks for."""
    from collections import Counter
    from orchestrator.run.node_types import describe_resources

    counts = Counter(describe_resources({k: float(n.get(k, 0)) for k in sorted(names | {"CPU"})}) for n in nodes)
    groups = [f"{n} x {{{what}}}" for what, n in counts.most_common()]
    return ", ".join(groups[:shown]) + (f", ... {len(groups) - shown} more kinds" if len(groups) > shown else "")


def _refusal(problems: list[str], header: str = "the cluster cannot run this sweep") -> SweepError:
    return SweepError(f"{header}:\n  - " + "\n  - ".join(problems))


def check_cluster(spec: SweepSpec, layout: SweepLayout, cluster: dict, kinds: list[str], grows: bool = False) -> None:
    """Resources for every task kind, and (on several nodes) that every node sees the storage,
    the data root and a local MLflow store. `cluster`: what the cluster has (`check_resources`), or can
    grow to where an autoscaler adds nodes (`wait_for_cluster` decided). `grows`: an autoscaler adds nodes
    later, where no check can look (a cluster that scales from zero has only its head now): local paths
    are said in a warning."""
    problems = check_resources(spec, cluster, kinds)
    if problems:
        raise _refusal(problems)
    from orchestrator.run.visibility import check_shared_paths, targets

    problems = check_shared_paths(spec, layout)
    if problems:
        raise SweepError("\n\n".join(problems))
    local = [f"`{t.key}` ({redact(t.value)})" for t in targets(spec, layout)] if grows else []
    if local:
        _LOG.warning(f"{', '.join(local)} {'is a path' if len(local) == 1 else 'are paths'} on this node's disk, and "
                     "the cluster's autoscaler starts nodes after this check, which cannot look at them: every node "
                     "it starts must mount the same path (an NFS export), else its tasks fail (FileNotFoundError) "
                     "or write where the driver does not look; an object store (s3://, gs://) needs none of this")


# ----- a cluster that is still growing

WAIT_POLL_S = 1.0                  # how often the cluster is re-read while waiting
WAIT_REPORT_S = 15.0               # how often the wait says what it waits for
AUTOSCALER_REACT_S = 60.0          # how long an autoscaler that was asked for nodes may take to start one


def wait_for_cluster(spec: SweepSpec, kinds: list[str], read, *, wait_s: float, counts: dict | None = None,
                     ask=None, log=print, sleep=time.sleep, clock=time.monotonic):
    """The first reading of the cluster (`read()`, a `capacity.ClusterView`) that can run the sweep's
    task `kinds`; SweepError (today's message) when none can within `wait_s` seconds.

    - The cluster has what the tasks need now: go.
    - An autoscaler runs and its node types are known: refuse only what no node type could ever run
      (the message names the node types considered), else go at once and say what the sweep will ask
      the autoscaler for; the tasks' own demand makes it start nodes, and they wait for them.
    - Otherwise wait while nodes are on their way (the autoscaler is starting some, or a node is
      still joining: listed before its resources count), up to `wait_s`, saying what it waits for.
      An autoscaler of unknown node types is asked for one task of each missing kind (`ask(bundles)`,
      `ray.autoscaler.sdk.request_resources`) and given AUTOSCALER_REACT_S to start a node for them.
    `counts`: unfinished tasks per kind (what the sweep asks for)."""
    view, start, said, asked = read(), clock(), -math.inf, False
    while True:
        problems = check_resources(spec, view.now(), kinds)
        if not problems:
            return view
        if view.can_grow:
            ever = check_resources(spec, view.at_most(), kinds)
            if ever:
                raise _refusal(ever, "the cluster cannot run this sweep, even with every node its autoscaler can "
                                     f"start (node types considered: {view.node_types.describe()})")
            log(_growth_plan(spec, view, kinds, counts or {}))
            return view
        elapsed = clock() - start
        if view.autoscaler is not None and ask is not None and not asked:
            ask(_bundles(spec, view, kinds))
            asked = True
        waiting = view.starting or (asked and elapsed < AUTOSCALER_REACT_S)
        if elapsed >= wait_s or not waiting:
            waited = f" (waited {elapsed:.0f} s for nodes; --wait-for-nodes {wait_s:g})" if elapsed >= 1 else ""
            raise _refusal(problems, f"the cluster cannot run this sweep{waited}")
        if clock() - said >= WAIT_REPORT_S:
            coming = (f"the autoscaler is starting {view.autoscaler.describe_pending()}" if view.pending_nodes
                      else "a node is joining" if view.registering else "the autoscaler was asked for nodes")
            log(f"waiting for nodes ({elapsed:.0f} of at most {wait_s:g} s; {coming}): the cluster has "
                f"{view.summary()}; missing: " + "; ".join(problems))
            said = clock()
        sleep(WAIT_POLL_S)
        view = read()


def _bundles(spec: SweepSpec, view, kinds: list[str]) -> list[dict]:
    """One task of each kind the cluster cannot run now: every bundle it asks for (`capacity.task_bundles`)."""
    from orchestrator.run.capacity import task_bundles

    missing = [k for k in kinds if check_resources(spec, view.now(), [k])]
    return [bundle for k in missing for bundle in task_bundles(k, spec.resources[k])]


def _growth_plan(spec: SweepSpec, view, kinds: list[str], counts: dict) -> str:
    """What the sweep will ask the autoscaler for, and what waiting for it means."""
    from orchestrator.run import capacity
    from orchestrator.run.node_types import describe_resources

    asks = []
    for kind in kinds:
        r = spec.resources[kind]
        demand = capacity.demand_of(r)
        at_once = view.slots(demand)
        if spec.max_concurrent:
            at_once = min(at_once, spec.max_concurrent)
        if counts.get(kind):
            at_once = min(at_once, counts[kind])
        asks.append(f"{kind}: up to {max(1, at_once)} at once x {{{describe_resources(demand)}}}")
    return (f"cluster: {view.summary()} now; its autoscaler can start {view.describe_growth()}.\n"
            f"The sweep asks it for " + "; ".join(asks) + ". Tasks wait until nodes have joined (on a cloud, "
            "the first ones take minutes); the autoscaler removes idle nodes again.")
