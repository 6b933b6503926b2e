"""Security: nothing user-supplied is unpickled or constructed from YAML tags, servers bind to
localhost, names stay inside the storage directory, and no credential is printed or lands in
Parquet, MLflow or the sweep directory."""
from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from orchestrator import cli
from orchestrator.results import outputs
from orchestrator.run import child_runs, schedule, sweep, tracking
from orchestrator.storage.layout import LayoutError, Storage, SweepLayout, check_name
from orchestrator.uris import redact
from tasks.checkpoint import checkpoint_files
from tasks.data import DataError, DataSettings, load_cue_data

REPO = Path(__file__).resolve().parents[1]
CODE_DIRS = ("tasks", "orchestrator", "scripts", "bench", "cluster")
RESTRICTED_LOADER = "tasks/datasets.py"   # the one module allowed to drive a (restricted) Unpickler


# ----- no unpickling of user files -------------------------------------------------------------

def _calls(text: str, name: str) -> list[str]:
    """The source of every call `name(...)` in `text` (balanced parentheses, may span lines)."""
    found = []
    for match in re.finditer(re.escape(name) + r"\s*\(", text):
        depth, i = 0, match.end() - 1
        for i in range(match.end() - 1, len(text)):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                break
        found.append(text[match.start():i + 1])
    return found


def unsafe_loads(path: str, text: str) -> list[str]:
    """Lines of `text` that could unpickle (or otherwise execute) a file's contents."""
    problems = []
    for banned in ("pickle.load", "pickle.loads", "cPickle", "dill.load", "cloudpickle.load", "joblib.load",
                   "read_pickle(", "shelve.open", "marshal.load", "yaml.unsafe_load", "yaml.full_load",
                   "Loader=yaml.Loader", "Loader=yaml.UnsafeLoader", "Loader=yaml.FullLoader"):
        if banned in text and not (banned == "read_pickle(" and path == RESTRICTED_LOADER):
            problems.append(f"{path}: {banned}")
    for call in _calls(text, "torch.load"):
        if not re.search(r"weights_only\s*=\s*True", call):
            problems.append(f"{path}: {call} without weights_only=True")
    for call in _calls(text, "np.load") + _calls(text, "numpy.load"):
        if re.search(r"allow_pickle\s*=\s*True", call):
            problems.append(f"{path}: {call}")
    if "Unpickler" in text and path != RESTRICTED_LOADER:
        problems.append(f"{path}: uses an Unpickler outside {RESTRICTED_LOADER}")
    for call in _calls(text, "yaml.load"):
        if "_Loader" not in call and "SafeLoader" not in call and "CSafeLoader" not in call:
            problems.append(f"{path}: {call} without a safe loader")
    return problems


def code_files() -> list[Path]:
    files = []
    for directory in CODE_DIRS:
        files += [p for p in (REPO / directory).rglob("*") if p.suffix in (".py", ".sh", ".yaml") and p.is_file()]
    return sorted(files)


def test_scanner_flags_unsafe_loads():
    samples = ["x = pickle.load(f)", "torch.load(path)", "torch.load(p,\n  map_location='cpu')",
               "np.load(p, allow_pickle=True)", "yaml.load(text)", "yaml.unsafe_load(t)", "pd.read_pickle(p)",
               "class U(pickle.Unpickler): pass"]
    for sample in samples:
        assert unsafe_loads("orchestrator/x.py", sample), sample
    assert unsafe_loads("x.py", "torch.load(p, weights_only=True)\nnp.load(p)\nyaml.safe_load(t)") == []


def test_no_code_path_unpickles_a_file():
    files = code_files()
    assert len(files) > 20 and any(p.name == "datasets.py" for p in files)
    problems = []
    for path in files:
        problems += unsafe_loads(path.relative_to(REPO).as_posix(), path.read_text(errors="replace"))
    assert problems == []


def test_the_restricted_loader_and_spec_loader_are_restricted():
    from orchestrator.spec import yaml_io
    from tasks import datasets

    assert issubclass(yaml_io._Loader, yaml.SafeLoader)
    text = (REPO / RESTRICTED_LOADER).read_text()
    assert ".load()" in text and text.count("Unpickler(") == text.count("_RestrictedUnpickler(")   # no other
    assert "find_class" in text and datasets._RestrictedUnpickler.find_class is not pickle.Unpickler.find_class


class _Exploit:
    """Unpickling this runs a shell command that creates `marker` (if anything executes it)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def plant_cifar(root: Path, marker: Path) -> None:
    payload = pickle.dumps(_Exploit(marker), protocol=2)
    for folder, names in (("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]),
                          ("cifar-100-python", ["train", "test"])):
        (root / folder).mkdir(parents=True)
        for name in names:
            (root / folder / name).write_bytes(payload)


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "dominoes"])
def test_malicious_pickle_planted_as_a_dataset_is_refused_without_executing(dataset, tmp_path):
    marker = tmp_path / "pwned"
    plant_cifar(tmp_path / "data", marker)
    pickle.loads(pickle.dumps(_Exploit(tmp_path / "control"), protocol=2))   # control: the exploit works
    assert (tmp_path / "control").exists()
    with pytest.raises(DataError) as info:
        load_cue_data(DataSettings(dataset=dataset, root=str(tmp_path / "data")))
    assert not marker.exists()
    message = str(info.value)
    assert "refused to unpickle global" in message and "system" in message, message
    assert ("cifar-100-python/train" if dataset == "cifar100" else "cifar-10-batches-py/data_batch_1") in message


def test_planted_pickle_in_place_of_a_checkpoint_is_refused(tmp_path):
    """Even with a matching sha256 in meta.json, a checkpoint is parsed as safetensors, never unpickled."""
    marker = tmp_path / "pwned"
    layout = SweepLayout(Storage(tmp_path / "storage"), "s")
    files = checkpoint_files({"w": __import__("torch").zeros(2)}, {})
    payload = pickle.dumps(_Exploit(marker), protocol=2)
    record = json.loads(files["meta.json"])
    import hashlib
    record.update(sha256=hashlib.sha256(payload).hexdigest(), size=len(payload))
    paths = layout.checkpoint_files("pretrain", "pretrain-0123456789abcdef")
    layout.storage.write_bytes(paths["model.safetensors"], payload)
    layout.storage.write_bytes(paths["meta.json"], json.dumps(record).encode())
    with pytest.raises(ValueError):
        outputs.load_checkpoint(layout, "pretrain", "pretrain-0123456789abcdef")
    assert not marker.exists()


# ----- servers and dashboards bind to localhost ------------------------------------------------

def test_printed_mlflow_ui_command_binds_localhost(tmp_path):
    from orchestrator.spec.sweep_spec import parse_spec

    command = sweep.mlflow_ui_command(parse_spec("name: s\n"), SweepLayout(Storage(tmp_path), "s"))
    assert "--host 127.0.0.1" in command and "0.0.0.0" not in command


def test_local_ray_starts_without_a_public_dashboard(monkeypatch):
    calls = []
    monkeypatch.setattr(schedule.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(schedule.ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    schedule.init_ray(num_cpus=1)
    (kwargs,) = calls
    assert kwargs.get("include_dashboard") is False or kwargs.get("dashboard_host") == "127.0.0.1", kwargs


def test_cluster_configs_bind_dashboards_to_localhost():
    texts = {p.relative_to(REPO).as_posix(): p.read_text() for p in code_files()}
    assert not [name for name, text in texts.items() if "0.0.0.0" in text]
    heads = [(name, line) for name, text in texts.items() for line in text.splitlines()
             if "ray start" in line and "--head" in line and not line.lstrip().startswith("#")]
    assert heads, "cluster/ has no `ray start --head` command"
    for name, line in heads:
        assert "--dashboard-host=127.0.0.1" in line, (name, line)
    for name, text in texts.items():
        for match in re.finditer(r"dashboard[-_]host[\"']?\s*[:=]\s*[\"']?([\w.:]+)", text):
            assert match.group(1) == "127.0.0.1", (name, match.group(0))



def test_the_kuberay_dashboard_answers_the_operator_and_only_with_the_token():
    """cluster/rayjob.yaml: KubeRay's operator reads the job's status from the dashboard through the head
    Service, so a dashboard bound to 127.0.0.1 gets the job marked Failed after 300 s of failed reads and the
    cluster deleted under the sweep; the dashboard keeps KubeRay's Pod-network default, and Ray's token
    authentication (KubeRay's `authOptions`, Ray >= 2.52) guards it and the GCS."""
    import yaml

    job = yaml.safe_load((REPO / "cluster" / "rayjob.yaml").read_text())
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["authOptions"]["mode"] == "token"
    assert not cluster["authOptions"].get("enableK8sTokenAuth")     # KubeRay refuses it for a RayJob
    assert tuple(int(x) for x in cluster["rayVersion"].split(".")[:2]) >= (2, 52)
    assert "dashboard-host" not in cluster["headGroupSpec"]["rayStartParams"]
    assert job["spec"]["submissionMode"] == "SidecarMode"             # the submitter reaches it on 127.0.0.1

# ----- names cannot escape the storage directory ----------------------------------------------

@pytest.mark.parametrize("name", ["..", "../x", "a/b", "/etc", ".hidden", "a\\b", "x/../..", "", "-rf", "a\x00b"])
def test_sweep_task_and_file_names_cannot_escape(name, tmp_path):
    storage = Storage(tmp_path / "root")
    with pytest.raises(LayoutError):
        check_name(name)
    with pytest.raises(LayoutError):
        SweepLayout(storage, name)
    layout = SweepLayout(storage, "ok")
    with pytest.raises(LayoutError):
        layout.task_dir("pretrain", name)
    with pytest.raises(LayoutError):
        layout.fragment(name, "pretrain-0123456789abcdef")


def test_storage_refuses_paths_outside_its_root(tmp_path):
    storage = Storage(tmp_path / "root")
    sibling = str(tmp_path / "root-sibling" / "x")      # shares the root's prefix
    for path in ("/etc/passwd", sibling, f"{storage.root}/../x", f"{storage.root}/a/../../x"):
        for op in (storage.read_bytes, storage.exists, storage.delete):
            with pytest.raises(LayoutError):
                op(path)
        with pytest.raises(LayoutError):
            storage.write_bytes(path, b"x")
    with pytest.raises(LayoutError):
        storage.join("a/../../x")
    assert not (tmp_path / "root-sibling").exists() and not (tmp_path / "x").exists()


# ----- no credentials in Parquet, MLflow or logs -----------------------------------------------

FAKE_SECRET = "FAKEsecretVALUE-7f3a9c1e"


def _tracker_with_one_task(uri: str, experiment: str, *, params=None, tags=None, error=None):
    """A tracker on `uri` with its parent run started and one (pretrain) task logged; (tracker, parent, child)."""
    from orchestrator.graph.dag import build_graph
    from orchestrator.run import recording
    from orchestrator.spec.sweep_spec import load_spec

    graph = build_graph(load_spec(None, ["seeds=[0]"]))
    tracker = tracking.MlflowTracker(uri, experiment_name=experiment)
    parent = tracker.start(tracking.SweepRun(graph=graph, sweep=experiment, version=1, spec_hash="h",
                                             params=params or {}, tags=tags or {}))
    task = next(t for t in graph.tasks.values() if t.kind == "pretrain")
    ended = recording.EndedTask(task, "failed" if error else "done", error, 1.0, 1.0, 2.0, "cpu",
                                {"secret_metric": 1.0, "acc": 0.5}, [])
    child = tracker.tasks_ended([ended])[task.id]
    tracker.finish("FINISHED")
    return tracker, parent, child


def test_mlflow_sink_never_logs_secret_keys(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    _, parent, child = _tracker_with_one_task(
        uri, "secrets", params={"sweep": "s", "api_token": FAKE_SECRET, "storage": {"password": FAKE_SECRET,
                                                                                     "Credentials": FAKE_SECRET}},
        tags={"aws_secret": FAKE_SECRET})
    client = mlflow.MlflowClient(uri)
    for run_id in (parent, child):
        data = client.get_run(run_id).data
        flat = json.dumps([data.params, data.tags, data.metrics])
        assert FAKE_SECRET not in flat
        assert not [k for k in (*data.params, *data.metrics) if child_runs.is_secret(k)]
    assert client.get_run(child).data.metrics["acc"] == 0.5
    assert FAKE_SECRET.encode() not in (tmp_path / "mlflow.db").read_bytes()


# ----- credentials in URIs are never printed --------------------------------------------------

@pytest.mark.parametrize("text, shown", [
    (f"s3://AKIAFAKE:{FAKE_SECRET}@bucket/runs", "s3://***@bucket/runs"),
    (f"s3://AKIAFAKE:ab/{FAKE_SECRET}+x@bucket/runs", "s3://***@bucket/runs"),   # AWS secrets hold / and +
    (f"error: storage 'gs://u:{FAKE_SECRET}@b/x' cannot be opened", "error: storage 'gs://***@b/x' cannot be opened"),
    (f"http://alice:{FAKE_SECRET}@127.0.0.1:5000/", "http://***@127.0.0.1:5000/"),
    (f"postgresql+psycopg2://bob:{FAKE_SECRET}@db/mlflow", "postgresql+psycopg2://***@db/mlflow"),
    (f"https://host/x?token={FAKE_SECRET}&a=1", "https://host/x?token=***&a=1"),
    (f"https://h/o?X-Amz-Signature={FAKE_SECRET}&X-Amz-Credential={FAKE_SECRET}",
     "https://h/o?X-Amz-Signature=***&X-Amz-Credential=***"),
    (f"a s3://k:{FAKE_SECRET}@b/x and http://u:{FAKE_SECRET}@h/", "a s3://***@b/x and http://***@h/"),
    ("/local/path, gs://bucket/x, sqlite:////tmp/mlflow.db", "/local/path, gs://bucket/x, sqlite:////tmp/mlflow.db"),
])
def test_redact_hides_credentials_in_uris(text, shown):
    assert redact(text) == shown and FAKE_SECRET not in redact(text)


def test_the_drivers_lines_and_warnings_go_out_redacted():
    import warnings

    from orchestrator.uris import redact_warnings, redacting

    lines: list[str] = []
    redacting(lines.append)(f"warning: upload to http://u:{FAKE_SECRET}@h/x failed")
    assert lines == ["warning: upload to http://***@h/x failed"]
    with warnings.catch_warnings(record=True) as seen:      # restores the process's warning display after
        warnings.simplefilter("always")
        redact_warnings()
        redact_warnings()                                     # once is enough; twice changes nothing
        warnings.warn(f"retrying s3://k:{FAKE_SECRET}@bucket/x", RuntimeWarning)
    assert [str(w.message) for w in seen] == ["retrying s3://***@bucket/x"]


def test_logged_messages_go_out_redacted(capsys):
    """The one channel of warnings and progress (`logging` under `orchestrator`, the CLI's console
    handler) redacts every message, whichever module logs it."""
    import logging

    from orchestrator.messages import to_console

    to_console()
    logging.getLogger("orchestrator.results.tables").warning(f"skipping s3://k:{FAKE_SECRET}@bucket/x.parquet")
    logging.getLogger("orchestrator.run.sweep").info(f"storage gs://u:{FAKE_SECRET}@b/runs")
    out, err = capsys.readouterr()
    assert err == "warning: skipping s3://***@bucket/x.parquet\n" and out == "storage gs://***@b/runs\n"


def test_mlflow_params_and_tags_never_hold_credentials_in_uris(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    storage = f"s3://AKIAFAKE:{FAKE_SECRET}@bucket/runs"
    _, parent, child = _tracker_with_one_task(
        uri, "uris", params={"storage": storage, "nested": {"root": f"gs://u:{FAKE_SECRET}@b/d"}, "uri": [storage]},
        tags={"where": storage}, error=f"OSError: cannot open {storage}")
    client = mlflow.MlflowClient(uri)
    for run_id in (parent, child):
        data = client.get_run(run_id).data
        assert FAKE_SECRET not in json.dumps([data.params, data.tags])
    assert client.get_run(parent).data.params["storage"] == "s3://***@bucket/runs"
    assert "s3://***@bucket/runs" in client.get_run(child).data.tags["error"]
    assert FAKE_SECRET.encode() not in (tmp_path / "mlflow.db").read_bytes()
    artifacts = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "error.txt" for p in artifacts)
    assert not [p for p in artifacts if FAKE_SECRET.encode() in p.read_bytes()]


@pytest.fixture
def http_404_server():
    """An HTTP server that answers every request with 404 (reachable, but not an MLflow server)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def _finished_sweep(tmp_path: Path, **changes) -> tuple[Path, Path]:
    """A sweep directory whose every task is finished (written without Ray), and its spec."""
    import torch

    from orchestrator.results import plan
    from orchestrator.graph.dag import build_graph
    from orchestrator.spec.sweep_spec import dump_spec, load_spec

    raw = {"name": "creds", "data": {"dataset": "digits"}, "models": [{"name": "small_cnn", "width": 8}],
           "seeds": [0], "cue_proportions": [0.0, 0.9], "finetune": {"methods": []},
           "paths": {"pairs": ["cue~nocue"], "kinds": ["linear"], "num_alphas": 2}, "max_concurrent": 2,
           "mlflow": {"enabled": False}}
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    spec = load_spec(spec_path)
    layout = SweepLayout(Storage(tmp_path / "storage"), spec.name)
    graph = build_graph(spec)
    layout.storage.write_bytes(layout.spec_file(), dump_spec(spec).encode())
    plan.write_plan(layout, graph)
    for task in graph.tasks.values():
        outputs.write_outputs(layout, task, outputs.TaskOutput(checkpoint={"w": torch.zeros(2)}))
    spec_path.write_text(yaml.safe_dump({**raw, **changes}))
    return spec_path, tmp_path / "storage"


@pytest.mark.parametrize("password", [FAKE_SECRET, f"{FAKE_SECRET}'q"])      # `'` is legal in a userinfo
def test_tracking_credentials_are_not_printed_when_mlflow_fails(tmp_path, capsys, http_404_server, password):
    """A reachable server that is not MLflow: the run warns and goes on (Parquet only), redacted."""
    uri = f"http://alice:{password}@127.0.0.1:{http_404_server}"
    spec, storage = _finished_sweep(tmp_path, mlflow={"enabled": True})
    code = cli.main(["run", str(spec), "--storage", str(storage), "--no-report", "--tracking-uri", uri])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "warning: MLflow tracking at http://***@127.0.0.1" in out + err
    assert FAKE_SECRET not in out + err


@pytest.mark.parametrize("password", [FAKE_SECRET, f"{FAKE_SECRET}'q"])
def test_tracking_credentials_do_not_reach_the_sweep_directory(tmp_path, capsys, http_404_server, password):
    uri = f"http://alice:{password}@127.0.0.1:{http_404_server}"
    spec, storage = _finished_sweep(tmp_path, mlflow={"enabled": True})
    assert cli.main(["run", str(spec), "--storage", str(storage), "--no-report", "--tracking-uri", uri]) == 0
    leaked = [str(p) for p in storage.rglob("*") if p.is_file() and FAKE_SECRET.encode() in p.read_bytes()]
    assert leaked == []


# ----- every sink of a whole run -----------------------------------------------------------------

def _holding(root: Path, secret: str) -> list[str]:
    """Files under `root` whose bytes hold `secret` (as text, or in the URL encoding MLflow may store)."""
    needles = (secret.encode(), secret.encode("utf-16-le"))
    found = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink() and any(n in path.read_bytes() for n in needles):
                found.append(str(path.relative_to(root)))
        except OSError:
            pass
    return found


@pytest.mark.slow
def test_no_sink_of_a_run_holds_a_credential(tmp_path):
    """Credentials planted in the spec's storage URI (overridden on the command line), the MLflow tracking
    URI, a task's exception (a model of your own that fails with an s3://KEY:SECRET@… URI) and the
    exceptions of the driver's side jobs (compaction, batched MLflow logging, the report's upload, closing
    the MLflow run: `tests/leaks.py`): not in stdout or stderr of `run` (progress lines, warnings, the failure
    summary), `status` or `report`, nor in any file of the sweep directory (the `tasks` table's errors,
    spec.yaml, plan, report.html, Ray's trial directories), the MLflow store and its artifacts (error tags,
    error.txt), or Ray's session logs. The same run has credentials in its environment (AWS, MLflow, Hugging
    Face, a password of the user's): none reaches what the run prints, the sweep directory or the MLflow store."""
    import shutil
    import tempfile

    from tests import leaks
    from tests.support.cli_batch import run_batch

    secret = leaks.SECRET
    store = tmp_path / "mlflow"
    store.mkdir()
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "leaks", "storage": leaks.URIS[0],
        "data": {"dataset": "digits"}, "models": [{"name": "small_cnn", "width": 4}, {"name": "tests.leaks:build"}],
        # per model a pretraining, its fine-tuning and the path between them: every table gets rows (of
        # small_cnn); the leaking model's pretraining fails and its dependents are skipped
        "seeds": [0], "cue_proportions": [0.9], "pretrain": {"epochs": 1, "batch_size": 64},
        "finetune": {"methods": ["naive"], "clean_subset": 64, "epochs": 1, "batch_size": 32},
        "paths": {"pairs": ["pretrained~ft"], "kinds": ["linear"], "num_alphas": 2, "bn_reset_samples": 64},
        "max_concurrent": 2,
        "mlflow": {"enabled": True, "tracking_uri": f"sqlite:///{store}/mlflow.db?password={secret}"}}))
    ray_tmp = Path(tempfile.mkdtemp(prefix="mmc-leak-", dir="/tmp"))   # short: Ray's socket paths have a limit
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MMC_FAIL_TASKS")}
        env.update(PYTHONPATH=str(REPO), RAY_TMPDIR=str(ray_tmp), CUDA_VISIBLE_DEVICES="",
                   MMC_PROGRESS_INTERVAL_S="0.5", AWS_SECRET_ACCESS_KEY=FAKE_SECRET, MLFLOW_TRACKING_TOKEN=FAKE_SECRET,
                   HF_TOKEN=FAKE_SECRET, MY_PASSWORD=FAKE_SECRET)
        storage = tmp_path / "storage"
        driver = ("import sys; from tests import leaks; leaks.install_driver_faults(); "
                  "from orchestrator.cli import main; sys.exit(main(sys.argv[1:]))")

        def cli(*args: str, faults: bool = False) -> subprocess.CompletedProcess:
            command = ["-c", driver] if faults else ["-m", "orchestrator"]
            return subprocess.run([sys.executable, *command, *args], cwd=REPO, env=env, capture_output=True,
                                  text=True, timeout=600)

        run = cli("run", str(spec), "--storage", str(storage), "--num-cpus", "2", faults=True)
        printed = {"run": run.stdout + run.stderr}
        assert run.returncode == 1 and "Traceback" not in printed["run"], printed["run"][-4000:]  # tasks failed
        for shown in ("initial weights from s3://***@bucket", "results were not compacted",
                      "MLflow could not store the sweep's report",
                      "batched MLflow logging failed", "MLflow could not close the sweep's run",
                      "RuntimeWarning: retrying s3://***@bucket"):
            assert shown in printed["run"], (shown, printed["run"][-4000:])     # each fault was met, and said
        sweep_dir = storage / "leaks"
        batch = {command: [command, str(sweep_dir)] for command in ("status", "report")}   # one interpreter
        both, results = run_batch(batch, tmp_path / "batch", env, REPO)
        assert both.returncode == 0 and sorted(results) == sorted(batch), both.stdout[-2000:] + both.stderr[-2000:]
        printed["status and report's interpreter"] = both.stdout + both.stderr
        for command, done in results.items():
            printed[command] = done["out"] + done["err"]
            assert done["code"] in (0, 1) and "Traceback" not in printed[command], printed[command][-2000:]
        assert [name for name, text in printed.items() if secret in text] == [], printed
        assert (sweep_dir / "report" / "report.html").is_file()
        assert b"initial weights from s3://***@bucket" in (store / "mlflow.db").read_bytes()   # errors reached MLflow
        errors = [e for e in pd_errors(sweep_dir) if e]
        assert errors and all("s3://***@bucket" in e for e in errors if "initial weights" in e), errors
        leaked = {"sweep": _holding(sweep_dir, secret), "mlflow": _holding(store, secret),
                  "ray": _holding(ray_tmp, secret)}
        assert leaked == {"sweep": [], "mlflow": [], "ray": []}
        from_env = {"printed": [name for name, text in printed.items() if FAKE_SECRET in text],
                    "sweep": _holding(sweep_dir, FAKE_SECRET), "mlflow": _holding(store, FAKE_SECRET)}
        assert from_env == {"printed": [], "sweep": [], "mlflow": []}, f"credentials of the environment leaked: {from_env}"
        assert any(p.suffix == ".parquet" for p in sweep_dir.rglob("*")), "the sweep wrote no table to look in"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def pd_errors(sweep_dir: Path) -> list[str]:
    """The `error` column of a sweep's `tasks` table."""
    from orchestrator.results import tables
    from orchestrator.storage.layout import Storage, SweepLayout

    frame = tables.read_table(SweepLayout(Storage(sweep_dir.parent), sweep_dir.name), "tasks")
    return [e for e in frame["error"].tolist() if isinstance(e, str)]
