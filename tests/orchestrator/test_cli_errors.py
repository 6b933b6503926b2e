"""Bad inputs refused by the CLI: exit status 2, one readable error that names the input and the fix,
no traceback, nothing written, no secret printed, and in bounded time.

The bad-spec corpus (tests/orchestrator/bad_specs/, shared with test_spec.py: each file starts with
`# expect: <substring of the error>`) goes through `orchestrator.cli.main` in-process (a subprocess
per spec would cost ~5 s of imports each); a handful go through a real `python -m orchestrator`
subprocess. Hostile specs that cannot live in the corpus (not UTF-8, too large, FIFOs), overrides,
flags, endpoints and storage URIs are generated here. No test in this file runs a task; Ray is
never started (see `no_ray`) except in the one test that checks resources on a real local Ray.
Hostile *state* of a sweep directory (markers, locks, stored spec) is in test_hostile_state.py.
"""
from __future__ import annotations

import errno
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestrator import cli, knobs
from orchestrator.run import preflight, sweep
from orchestrator.run.capacity import ClusterView
from orchestrator.spec import yaml_io
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.spec.sweep_spec import load_spec

REPO = Path(__file__).resolve().parents[2]
BAD_SPEC_DIR = Path(__file__).parent / "bad_specs"
BAD_SPECS = sorted(BAD_SPEC_DIR.glob("*.yaml"))
CORPUS_BEFORE_ISSUE_12 = 64
MAX_SECONDS = 10            # any refusal of a spec, in-process
MAX_ERROR_CHARS = 4000      # "one readable error"
SECRET = "SUPERSECRETfake7f3a"
GOOD = {
    "name": "good",
    "data": {"dataset": "digits"},
    "models": [{"name": "small_cnn", "width": 8}],
    "seeds": [0],
    "cue_proportions": [0.0, 0.9],
    "pretrain": {"epochs": 1},
    "finetune": {"methods": []},
    "paths": {"pairs": ["cue~nocue"], "kinds": ["linear"], "num_alphas": 2},
}


class RayStarted(Exception):
    """Raised by the stand-in for `init_ray`: the input passed every check before the cluster."""


def expected_messages(path: Path) -> list[str]:
    return [line.split("# expect:", 1)[1].strip() for line in path.read_text().splitlines()
            if line.startswith("# expect:")]


def write_spec(directory: Path, filename: str = "spec.yaml", **changes) -> Path:
    raw = {**GOOD, **changes}
    path = directory / filename
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def main(capsys, *argv: str) -> tuple[int, str, str, float]:
    start = time.monotonic()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err, time.monotonic() - start


def written(root: Path, *keep: str) -> list[str]:
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.relative_to(root).parts[0] not in keep)


def assert_refused(code: int, err: str, root: Path | None, *needles: str, keep: tuple = (), out: str = "",
                   elapsed: float = 0.0) -> None:
    """Exit 2, one `error:` line first (Ray may warn before it), the needles, no traceback, nothing new
    under `root` (except `keep`), no secret, bounded time and length."""
    assert code == cli.EXIT_BAD_INPUT, f"exit {code}:\n{err}"
    assert err.startswith("error: ") or "\nerror: " in err, err
    assert err.count("error: ") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in:\n{err}"
    assert SECRET not in err + out
    assert len(err) < MAX_ERROR_CHARS, f"{len(err)} characters of error"
    assert elapsed < MAX_SECONDS, f"took {elapsed:.1f} s"
    if root is not None:
        assert written(root, *keep) == [], f"wrote {written(root, *keep)}"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers (a hung server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


@pytest.fixture(autouse=True)
def no_ray(monkeypatch):
    """Nothing here may start Ray: every input must be refused before that."""
    def refuse(*args, **kwargs):
        raise RayStarted("Ray was started for a bad input")
    monkeypatch.setattr(sweep, "init_ray", refuse)
    monkeypatch.setenv(knobs.CONNECT_TIMEOUT_S.name, "2")


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    """An empty working directory (the default storage ./mmc-runs would land here)."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


# ----- the bad-spec corpus --------------------------------------------------------------------

def test_corpus_grew_by_at_least_40_cases():
    assert len(BAD_SPECS) >= CORPUS_BEFORE_ISSUE_12 + 40
    assert all(expected_messages(p) and "?" not in expected_messages(p) for p in BAD_SPECS)


@pytest.mark.parametrize("path", BAD_SPECS, ids=lambda p: p.stem)
def test_bad_spec_is_refused_by_run(path, cwd, capsys):
    """No --storage: the spec's own `storage` (or ./mmc-runs in the working directory) is at stake."""
    code, out, err, elapsed = main(capsys, "run", str(path))
    assert_refused(code, err, cwd, str(path), *expected_messages(path), out=out, elapsed=elapsed)
    assert out == ""


@pytest.mark.parametrize("path", BAD_SPECS, ids=lambda p: p.stem)
def test_bad_spec_is_refused_by_plan(path, cwd, capsys):
    code, out, err, elapsed = main(capsys, "plan", str(path))
    assert_refused(code, err, cwd, str(path), *expected_messages(path), out=out, elapsed=elapsed)


SUBPROCESS_SPECS = ("alias_bomb", "lr_nan", "name_dotdot")   # ~5 s of imports each


def test_bad_specs_through_real_subprocesses(tmp_path):
    """The same refusals from `python -m orchestrator run` (what users and `ray job submit` call)."""
    procs = {}
    for stem in SUBPROCESS_SPECS:
        work = tmp_path / stem
        work.mkdir()
        cmd = [sys.executable, "-m", "orchestrator", "run", str(BAD_SPEC_DIR / f"{stem}.yaml")]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        procs[stem] = (subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True), time.monotonic())
    for stem, (proc, start) in procs.items():
        out, err = proc.communicate(timeout=180)
        assert_refused(proc.returncode, err, tmp_path / stem, *expected_messages(BAD_SPEC_DIR / f"{stem}.yaml"),
                       out=out)
        assert out == ""


@pytest.mark.parametrize("stem", ["not_a_mapping", "scalar_document"])
def test_spec_that_is_not_a_mapping_is_named_as_such_with_flags(stem, tmp_path, capsys):
    path = BAD_SPEC_DIR / f"{stem}.yaml"
    code, out, err, elapsed = main(capsys, "run", str(path), "--storage", str(tmp_path / "storage"))
    assert_refused(code, err, tmp_path, *expected_messages(path), out=out, elapsed=elapsed)


# ----- hostile spec files that cannot live in the corpus ---------------------------------------

@pytest.mark.parametrize("content, needle", [
    (b"name: caf\xe9\n", "is not UTF-8 text (byte 9: b'\\xe9'); save it as UTF-8"),
    ("name: x\n".encode("utf-16"), "is not UTF-8 text"),
    (b"name: x\n\x00\x00\xff\xfe", "is not UTF-8 text"),
    (b"# " + b"x" * 1_000_001 + b"\n", "is larger than 1000000 bytes"),
    (b"name: x\nseeds: [" + b", ".join(b"-1" for _ in range(5000)) + b"]\n", "... and 4975 more (fix these first)"),
    (b"name: x\nseeds: [" + b", ".join(str(i).encode() for i in range(10_001)) + b"]\n",
     "`seeds`: 10001 items; at most 10000"),
    (b"name: x\ndata: {cue: " + b"z" * 200_000 + b"}\n", "`data.cue`: 'zzzzzzzz"),
    (b"name: x\ndescription: " + b"d" * 10_001 + b"\n", "`description`: 'dddd"),
    (b"name: x\nseeds: [" + b", ".join(str(i).encode() for i in range(9000)) + b"]\n"
     b"pretrain: {epochs: {grid: [1, 2, 3, 4, 5, 6, 7, 8, 9]}}\n", "tasks; at most 2,000,000"),
], ids=["latin1", "utf16", "binary", "too-large", "5000-problems", "10001-seeds", "200k-value", "long-description",
        "plans-too-many-tasks"])
def test_hostile_spec_files_are_refused(content, needle, tmp_path, cwd, capsys):
    path = tmp_path / "hostile.yaml"
    path.write_bytes(content)
    code, out, err, elapsed = main(capsys, "run", str(path))
    assert_refused(code, err, cwd, str(path), needle, out=out, elapsed=elapsed)


def test_utf8_bom_is_accepted(tmp_path, cwd, capsys):
    """Control: a UTF-8 spec with a byte-order mark (Windows editors) is fine."""
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + yaml.safe_dump(GOOD).encode())
    assert load_spec(path).name == "good"


@pytest.mark.parametrize("kind", ["directory", "fifo", "dev-zero", "missing"])
def test_spec_path_that_is_not_a_file(kind, tmp_path, cwd, capsys, monkeypatch):
    monkeypatch.setattr(yaml_io, "STREAM_TIMEOUT_S", 1.0)
    path = {"directory": tmp_path, "fifo": tmp_path / "fifo", "dev-zero": Path("/dev/zero"),
            "missing": tmp_path / "missing.yaml"}[kind]
    if kind == "fifo":
        os.mkfifo(path)   # nobody writes to it: reading it must not hang
    needle = {"directory": "is a directory, not a spec file", "fifo": "delivered no (more) text within 1 s",
              "dev-zero": "is larger than 1000000 bytes", "missing": "No such file or directory"}[kind]
    for command in ("run", "plan"):
        code, out, err, elapsed = main(capsys, command, str(path))
        assert_refused(code, err, cwd, str(path), needle, out=out, elapsed=elapsed)


def test_extends_of_a_non_utf8_file(tmp_path, cwd, capsys):
    (tmp_path / "base.yaml").write_bytes(b"pretrain: {epochs: 3}\n# \xff\n")
    spec = write_spec(tmp_path, extends="base.yaml")
    code, out, err, elapsed = main(capsys, "run", str(spec))
    assert_refused(code, err, cwd, "base.yaml is not UTF-8 text", out=out, elapsed=elapsed)


# ----- key=value overrides --------------------------------------------------------------------

@pytest.mark.parametrize("override, needle", [
    ("finetune..lam=3", "override 'finetune..lam=3' is not `key=value` with a dotted key"),
    ("=3", "override '=3' is not `key=value`"),
    ("1abc=2", "override '1abc=2' is not `key=value`"),
    ("seeds.0=1", "override 'seeds.0=1' is not `key=value`"),
    ("finetune.lam=[", "override 'finetune.lam=[': invalid YAML"),
    ("finetune.lam=.inf", "`finetune.lam`: inf is not allowed; must be a finite number"),
    ("finetune.lam=.nan", "`finetune.lam`: nan is not allowed; must be a finite number"),
    ("finetune.lam=010", "010 has a leading zero"),
    ("finetune.lam=!!float 3", "the tag '!!float' is not allowed"),
    ("finetune.lam=&a [*a, *a]", "override 'finetune.lam=&a [*a, *a]'"),
    ("finetune.nosuch=1", "`finetune.nosuch`: unknown key"),
    ("nosuch.key=1", "`nosuch`: unknown key"),
    ("pretrain=3", "`pretrain`: 3 is not allowed; must be a mapping of `key: value` lines (got an integer)"),
    ("name=a/b", "`name`: 'a/b' is not allowed"),
    ("seeds=[0, 9223372036854775808]", "`seeds[1]`: 9223372036854775808 is not allowed"),
    ("max_concurrent=null", None),   # the documented default: accepted (reaches Ray)
    ("mlflow.tracking_uri=http://u:" + SECRET + "@host:99999", "'http://***@host:99999' names no valid host"),
    ("mlflow.tracking_uri=http://u:a'" + SECRET + "@host:99999", "'http://***@host:99999' names no valid host"),
    ("mlflow.tracking_uri=http://u:a b " + SECRET + "@host:1", "'http://***@host:1' is not allowed"),   # known whole
    ("finetune.lam", "'finetune.lam': only the first argument may be a spec file"),
])
def test_bad_overrides_are_refused(override, needle, tmp_path, cwd, capsys):
    spec = write_spec(tmp_path)
    if needle is None:
        with pytest.raises(RayStarted):
            cli.main(["run", str(spec), override, "--storage", str(tmp_path / "storage")])
        return
    code, out, err, elapsed = main(capsys, "run", str(spec), override, "--storage", str(tmp_path / "storage"))
    assert_refused(code, err, tmp_path / "storage", needle, out=out, elapsed=elapsed)
    assert written(cwd) == []


# ----- flags: validated like the spec keys they override --------------------------------------

@pytest.mark.parametrize("flags, needle", [
    (["--num-cpus", "-1"], "--num-cpus -1 is not allowed"),
    (["--num-cpus", "0"], "--num-cpus 0 is not allowed"),
    (["--num-cpus", "99999999999999999999"], "--num-cpus 99999999999999999999 is not allowed"),
    (["--num-cpus", "x"], "argument --num-cpus: invalid int value: 'x'"),
    # numbers as a spec writes them: int() would read '1_0' as 10 and another script's digits as a number
    (["--num-cpus", "1_0"], "argument --num-cpus: invalid int value: '1_0'"),
    (["--max-concurrent", "\u0661"], "argument --max-concurrent: invalid int value: '\u0661'"),
    (["--wait-for-nodes", "6_0"], "argument --wait-for-nodes: invalid float value: '6_0'"),
    (["--max-concurrent", "0"], "`max_concurrent` (--max-concurrent): 0 is not allowed; must be >= 1 and <= 10000"),
    (["--max-concurrent", "-5"], "`max_concurrent` (--max-concurrent): -5 is not allowed"),
    (["--max-concurrent", "100000000000000000000"], "(--max-concurrent): 100000000000000000000 is not allowed"),
    (["--tracking-uri", ""], "`mlflow.tracking_uri` (--tracking-uri): '' is not allowed"),
    (["--tracking-uri", "ftp://host/x"], "has the scheme 'ftp', which MLflow does not track to"),
    (["--tracking-uri", "http://"], "names no valid host[:port]"),
    (["--address", "nonsense"], "--address 'nonsense' is not host:port"),
    (["--address", "127.0.0.1:99999"], "--address '127.0.0.1:99999' is not host:port"),
    (["--address", "http://[::1"], "--address 'http://[::1' is not host:port"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    # flags are written out in full (an abbreviation would change meaning once another flag starts so)
    (["--max-conc", "2"], "unrecognized arguments: --max-conc (--max-conc: did you mean --max-concurrent? Flags "
                          "are written out in full)"),
    (["--no-rep"], "(--no-rep: did you mean --no-report?"),
    (["--wait", "5"], "(--wait: did you mean --wait-for-nodes?"),                 # a prefix, however short
    (["--num-cpu=2"], "(--num-cpu=2: did you mean --num-cpus?"),
    # a spec key written as a flag: how to give it
    (["--seeds", "[5]"], "unrecognized arguments: --seeds (--seeds: a spec key is given as `seeds=VALUE` after the spec)"),
    (["--finetune.lam=3"], "(--finetune.lam=3: a spec key is given as `finetune.lam=VALUE` after the spec)"),
    # a mistyped flag's value is shown as the storage's would be: without its credentials
    ([f"--storag=s3://key:{SECRET}@bucket/x"], "unrecognized arguments: --storag=s3://***@bucket/x"),
    ([f"--bogus=s3://key:{SECRET}@bucket/x"], "unrecognized arguments: --bogus=s3://***@bucket/x"),
    # one key set twice on a command line: which one counts is a guess; the values are not shown (credentials)
    (["seeds=[0]", "seeds=[1]"], "`seeds` given more than once as key=value; give each once"),
    (["--max-concurrent", "5", "max_concurrent=1"], "`max_concurrent` given both as --max-concurrent and as "
                                                    "max_concurrent=...; give it once"),
    ([f"storage=s3://key:{SECRET}@bucket/x"], "`storage` given both as --storage and as storage=..."),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_run_flags_are_refused(flags, needle, tmp_path, cwd, capsys):
    spec = write_spec(tmp_path)
    storage = tmp_path / "storage"
    try:
        code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", str(storage), *flags)
    except SystemExit as exc:   # argparse's own errors
        code, (out, err), elapsed = exc.code, capsys.readouterr(), 0.0
    assert_refused(code, err, storage, needle, out=out, elapsed=elapsed)
    assert written(cwd) == []


@pytest.mark.parametrize("num_cpus", ["0", "-1", "100001"])
def test_claims_refuses_a_bad_num_cpus_before_ray_starts(num_cpus, tmp_path, cwd, capsys):
    """`claims SPEC --num-cpus 0` is refused as `run`'s is, naming the range, before Ray starts (it started a
    Ray of 0 CPUs, then refused every task kind's `cpus`)."""
    spec = write_spec(tmp_path)
    storage = tmp_path / "storage"
    code, out, err, elapsed = main(capsys, "claims", str(spec), "--storage", str(storage), "--num-cpus", num_cpus)
    assert_refused(code, err, storage, f"--num-cpus {num_cpus} is not allowed; give a whole number of CPUs from 1 "
                   "to 100000", out=out, elapsed=elapsed)
    assert written(cwd) == []


@pytest.mark.parametrize("interval", ["-1", "0", "nan", "inf", "1e9"])
def test_bad_status_interval_is_refused(interval, tmp_path, capsys):
    code, out, err, elapsed = main(capsys, "status", str(tmp_path), "--interval", interval)
    assert_refused(code, err, tmp_path, "--interval", "give seconds between 0.1 and 3600", out=out, elapsed=elapsed)


# ----- network endpoints fail fast (MMC_CONNECT_TIMEOUT_S=2 here) -------------------------------

def test_unreachable_ray_address_fails_fast(tmp_path, cwd, capsys):
    spec = write_spec(tmp_path)
    storage = tmp_path / "storage"
    address = f"alice:{SECRET}@127.0.0.1:{closed_port()}"
    code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", str(storage), "--address", address)
    assert_refused(code, err, storage, "--address '***@127.0.0.1:", "no Ray cluster answers within 2 s",
                   "start it (`ray start --head", out=out, elapsed=elapsed)
    assert not storage.exists() and written(cwd) == []


@pytest.mark.parametrize("server", ["silent", "http1"])
def test_ray_address_that_is_not_ray_fails_fast(server, tmp_path, cwd, capsys, silent_port):
    """A port that accepts and never answers (or answers HTTP/1.1) kept `ray.init` retrying for minutes."""
    import threading

    port = silent_port
    if server == "http1":
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]

        def answer():
            conn, _ = listener.accept()
            conn.recv(64)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            conn.close()
        threading.Thread(target=answer, daemon=True).start()
    spec = write_spec(tmp_path)
    storage = tmp_path / "storage"
    code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", str(storage), "--address",
                                   f"127.0.0.1:{port}")
    needle = "(no answer)" if server == "silent" else "(not a gRPC (Ray) endpoint)"
    assert_refused(code, err, storage, f"--address '127.0.0.1:{port}': no Ray cluster answers within 2 s", needle,
                   out=out, elapsed=elapsed)
    assert elapsed < 2 * 2 + 2 and not storage.exists()


def test_a_real_ray_passes_the_address_check(ray_local):
    """Control: Ray's GCS answers the check at once."""
    address = ray_local._private.worker.global_worker.node.gcs_address
    start = time.monotonic()
    preflight.check_ray_address(address)
    assert time.monotonic() - start < 2


def test_unreachable_ray_address_from_the_environment(tmp_path, cwd, capsys, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{closed_port()}")
    spec = write_spec(tmp_path)
    code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", str(tmp_path / "storage"))
    assert_refused(code, err, tmp_path / "storage", "$RAY_ADDRESS '127.0.0.1:", "no Ray cluster answers within 2 s",
                   out=out, elapsed=elapsed)


@pytest.mark.parametrize("server", ["closed", "silent"])
def test_unreachable_tracking_server_fails_fast(server, tmp_path, cwd, capsys, silent_port):
    port = closed_port() if server == "closed" else silent_port
    spec = write_spec(tmp_path)
    storage = tmp_path / "storage"
    uri = f"http://alice:{SECRET}@127.0.0.1:{port}"
    code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", str(storage), "--tracking-uri", uri)
    assert_refused(code, err, storage, f"--tracking-uri / `mlflow.tracking_uri` 'http://***@127.0.0.1:{port}' "
                   "does not answer within 2 s", "set `mlflow.enabled: false`", out=out, elapsed=elapsed)
    assert elapsed < 2 * 2 + 2
    assert not storage.exists() and written(cwd) == []


def test_unreachable_tracking_database_fails_fast(tmp_path, cwd, capsys):
    spec = write_spec(tmp_path, mlflow={"tracking_uri": f"postgresql://bob:{SECRET}@127.0.0.1:{closed_port()}/mlflow"})
    code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", str(tmp_path / "storage"))
    assert_refused(code, err, tmp_path / "storage", "'postgresql://***@127.0.0.1:", "does not answer within 2 s",
                   out=out, elapsed=elapsed)


def test_unreachable_endpoints_through_a_real_subprocess(tmp_path, silent_port):
    """A hung tracking server and a closed Ray port, end to end: exit 2 within the timeout, nothing left."""
    spec = write_spec(tmp_path)
    storage = tmp_path / "storage"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PYTHONPATH=str(REPO), MMC_CONNECT_TIMEOUT_S="2")
    for flags in (["--tracking-uri", f"http://u:{SECRET}@127.0.0.1:{silent_port}"],
                  ["--address", f"127.0.0.1:{closed_port()}"]):
        proc = subprocess.run([sys.executable, "-m", "orchestrator", "run", str(spec), "--storage", str(storage),
                               *flags], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert_refused(proc.returncode, proc.stderr, storage, "within 2 s", out=proc.stdout)
        assert not storage.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


# ----- names, storage URIs --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", "a\\b", "/abs", "x/../../y", "", "x\n",
                                  "a\x00b", "-rf", "a" * 101])
def test_names_that_could_escape_the_storage_are_refused(name, tmp_path, cwd, capsys):
    storage = tmp_path / "storage"
    storage.mkdir()
    spec = write_spec(tmp_path, name=name)
    code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", str(storage))
    assert_refused(code, err, storage, "`name`", out=out, elapsed=elapsed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "spec.yaml", "storage"] and written(cwd) == []


@pytest.mark.parametrize("uri, needle", [
    ("ftp://host/runs", "unknown URI scheme 'ftp'"),
    ("http://host/runs", "unknown URI scheme 'http'"),
    ("s3://", "names no location"),
    ("", "'' is not allowed"),
    ("   ", "'' is not allowed"),
    ("file://otherhost/runs", "is not a local file URI; use file:///absolute/path"),
    ("file:relative/runs", "is not a local file URI"),
    ("s3://bucket/runs", "`mlflow.tracking_uri`: is required"),   # remote storage needs a tracking server
    (f"s3://AKIAFAKE:{SECRET}@bucket/runs", "'s3://***@bucket/runs'"),
    (f"gs://AKIAFAKE:{SECRET}@bucket/runs", "'gs://***@bucket/runs'"),
])
def test_invalid_storage_uris_are_refused(uri, needle, tmp_path, cwd, capsys):
    spec = write_spec(tmp_path)
    code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", uri)
    assert_refused(code, err, cwd, needle, out=out, elapsed=elapsed)


def test_storage_credentials_are_never_printed(tmp_path, cwd, capsys):
    """Credentials with '/' and '+' (as AWS secrets have) in the storage URI, a hung endpoint: redacted."""
    spec = write_spec(tmp_path)
    storage = f"s3://AKIAFAKE:ab/{SECRET}+x@bucket/runs?endpoint_override=127.0.0.1:{closed_port()}&scheme=http"
    code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", storage,
                                   "--tracking-uri", f"http://u:{SECRET}@127.0.0.1:{closed_port()}")
    assert_refused(code, err, cwd, "http://***@127.0.0.1", out=out, elapsed=elapsed)
    code, out, err, _ = main(capsys, "plan", str(spec), f"storage={storage}", "mlflow.enabled=false", "--resolved")
    assert code == 0 and SECRET not in out + err and "s3://***@bucket/runs" in out


def test_a_long_secret_in_a_flag_is_hidden_before_the_value_is_shortened(tmp_path, cwd, capsys):
    """A flag's value longer than a message shows is shortened: its credentials are hidden first (an AWS secret
    with `/` URL-encoded is over 40 characters; cut before the `@`, redaction no longer saw them)."""
    spec = write_spec(tmp_path)
    secret = SECRET[:8] + "%2F" * 20 + SECRET
    for flag, value, shown in (("--storage", f"s3://AKIAFAKEKEY:{secret}@bucket/runs", 's3://***@bucket/runs'),
                               ("--tracking-uri", f"https://user:{secret}@mlflow.example.com:5000", "https://***@mlflow")):
        code, out, err, elapsed = main(capsys, "run", str(spec), flag, value, "pretrain.epochs=0")
        assert_refused(code, err, cwd, shown, "`pretrain.epochs`: 0 is not allowed", out=out, elapsed=elapsed)
        assert SECRET[:8] not in err + out and "AKIAFAKEKEY" not in err + out


def test_storage_uri_that_cannot_be_opened_is_refused(tmp_path, cwd, capsys):
    spec = write_spec(tmp_path, mlflow={"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"})
    code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", "hdfs://127.0.0.1:1/runs")
    assert_refused(code, err, cwd, "hdfs://127.0.0.1:1/runs", out=out, elapsed=elapsed)
    assert "cannot be opened" in err or "not writable" in err
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("form", ["file://localhost{}", "file:{}", "file://{}"])
def test_file_uris_are_absolute_local_paths(form, tmp_path, cwd):
    """`file://localhost/abs` and `file:/abs` name /abs, not a path under the working directory."""
    target = tmp_path / "runs"
    assert Storage(form.format(target)).root == str(target)
    spec = write_spec(tmp_path)
    with pytest.raises(RayStarted):   # every check passed: the next step is the cluster
        cli.main(["run", str(spec), "--storage", form.format(target)])
    assert (target / "good").is_dir() and written(cwd) == []


def test_bad_max_concurrent_override_is_refused(tmp_path, capsys):
    spec = write_spec(tmp_path)
    code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", str(tmp_path / "s"), "--max-concurrent", "0")
    assert_refused(code, err, tmp_path / "s", "`max_concurrent` (--max-concurrent): 0 is not allowed", out=out,
                   elapsed=elapsed)


# ----- storage that is missing, unwritable or full ---------------------------------------------

def test_storage_under_a_file_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    spec = write_spec(tmp_path)
    for storage in (blocker, blocker / "runs"):
        code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", str(storage))
        assert_refused(code, err, None, "is not writable", out=out, elapsed=elapsed)
        assert blocker.read_text() == "not a directory\n"


def test_storage_on_an_unwritable_file_system_is_refused(tmp_path, capsys):
    spec = write_spec(tmp_path)                  # /proc refuses new directories, even to root
    code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", "/proc/mmc-sweep-test-storage")
    assert_refused(code, err, None, "/proc/mmc-sweep-test-storage", "is not writable", out=out, elapsed=elapsed)


def test_full_storage_is_refused_and_leaves_no_directories(tmp_path, capsys, monkeypatch):
    def full(self, path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    monkeypatch.setattr(Storage, "write_bytes", full)
    storage = tmp_path / "storage"
    spec = write_spec(tmp_path)
    code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", str(storage))
    assert_refused(code, err, storage, "No space left on device", out=out, elapsed=elapsed)
    assert not storage.exists()                # the directories the probe made are removed again


def test_missing_storage_directory_is_probed_without_leaving_anything(tmp_path):
    """A local storage path that does not exist yet is fine (created when the run starts)."""
    layout = SweepLayout(Storage(tmp_path / "new" / "runs"), "good")
    preflight.check_storage(layout)
    assert not (tmp_path / "new").exists()     # the probe leaves nothing behind


# ----- data -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dataset, needle", [
    ("cifar10", "cifar-10-batches-py/data_batch_1"),
    ("cifar100", "cifar-100-python/train"),
    ("fashion_mnist", "train-images-idx3-ubyte"),
    ("dominoes", "cifar-10-batches-py/test_batch"),
])
def test_real_dataset_without_its_files_is_refused(dataset, needle, tmp_path, capsys):
    root = tmp_path / "data"
    root.mkdir()
    storage = tmp_path / "storage"
    storage.mkdir()
    spec = write_spec(tmp_path, data={"dataset": dataset, "root": str(root)})
    code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", str(storage))
    assert_refused(code, err, storage, needle, f"mmc-sweep data download {dataset} --root {root}", out=out,
                   elapsed=elapsed)


def test_missing_data_root_is_refused(tmp_path, capsys):
    spec = write_spec(tmp_path, data={"dataset": "cifar10", "root": str(tmp_path / "nowhere")})
    code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", str(tmp_path / "s"))
    assert_refused(code, err, tmp_path / "s", "`data.root`", "is not an existing directory", out=out, elapsed=elapsed)
    spec = write_spec(tmp_path, data={"dataset": "cifar10"})
    code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", str(tmp_path / "s"))
    assert_refused(code, err, tmp_path / "s", "`data.root`: is required for dataset 'cifar10'", out=out,
                   elapsed=elapsed)


@pytest.mark.parametrize("where, needle", [
    ("file", "is a file, not a directory; give a directory"),
    ("under-file", "is a file, not a directory; give a directory"),
    ("unwritable", "cannot write the dataset there"),
    ("empty", "is not allowed; give the directory to download the dataset into"),
])
def test_data_download_into_a_bad_root_is_refused(where, needle, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.chdir(tmp_path)             # '' must not mean the current directory
    root = {"file": blocker, "under-file": blocker / "data", "unwritable": Path("/proc/mmc-sweep-data"),
            "empty": ""}[where]
    code, out, err, elapsed = main(capsys, "data", "download", "cifar10", "--root", str(root))
    assert_refused(code, err, None, f"--root {root!r}" if root == "" else f"--root {root}", needle, out=out,
                   elapsed=elapsed)
    assert blocker.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_data_download_of_an_unknown_dataset_is_refused(tmp_path, capsys):
    code, out, err, elapsed = main(capsys, "data", "download", "cifar11", "--root", str(tmp_path / "d"))
    assert_refused(code, err, tmp_path, "unknown dataset `cifar11`; downloadable: cifar10", out=out, elapsed=elapsed)


# ----- resources ------------------------------------------------------------------------------

def test_more_gpus_than_the_cluster_has_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep, "init_ray", lambda **kwargs: None)
    monkeypatch.setattr(sweep, "read_cluster", lambda *a, **k: ClusterView(visible={"CPU": 2.0, "memory": 8e9}))
    storage = tmp_path / "storage"
    spec = write_spec(tmp_path, resources={"pretrain": {"cpus": 1, "gpus": 2}})
    code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", str(storage))
    assert_refused(code, err, storage, "the cluster cannot run this sweep", "pretrain", out=out, elapsed=elapsed)
    assert not storage.exists()


def test_impossible_resources_on_a_real_local_ray(tmp_path):
    storage = tmp_path / "storage"
    spec = write_spec(tmp_path, resources={"pretrain": {"cpus": 1, "gpus": 1}})
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "run", str(spec), "--storage", str(storage),
                           "--num-cpus", "1"], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert_refused(proc.returncode, proc.stderr, storage, "the cluster cannot run this sweep", "GPU", out=proc.stdout)
    assert not storage.exists()


# ----- two `run` commands on one sweep ---------------------------------------------------------

def test_second_run_on_a_locked_sweep_is_refused(tmp_path, capsys):
    holder = subprocess.Popen(["sleep", "60"])
    try:
        layout = SweepLayout(Storage(tmp_path / "storage"), "good")
        lock = Path(layout.lock_file())
        lock.parent.mkdir(parents=True)
        record = {"pid": holder.pid, "host": socket.gethostname(), "user": "someone", "started_at": time.time()}
        lock.write_text(json.dumps(record))
        spec = write_spec(tmp_path)
        code, out, err, elapsed = main(capsys, "run", str(spec), "--storage", str(tmp_path / "storage"))
        assert_refused(code, err, None, f"another `mmc-sweep run` (pid {holder.pid} on {socket.gethostname()}",
                       f"delete {lock}", out=out, elapsed=elapsed)
        assert json.loads(lock.read_text()) == record                  # the holder's lock is untouched
        assert sorted(p.name for p in lock.parent.iterdir()) == ["run.lock"]   # nothing else written
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_of_a_dead_driver_is_taken_over(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    layout = SweepLayout(Storage(tmp_path), "good")
    Path(layout.root).mkdir()
    Path(layout.lock_file()).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    with sweep.sweep_lock(layout):
        assert json.loads(Path(layout.lock_file()).read_text())["pid"] == os.getpid()
    assert not Path(layout.lock_file()).exists()


def _contend(root: str, barrier, results) -> None:
    layout = SweepLayout(Storage(root), "good")
    barrier.wait()
    try:
        with sweep.sweep_lock(layout):
            results.put("won")
            time.sleep(1.0)
    except sweep.SweepError as exc:
        results.put(f"refused: {exc}")


def test_two_drivers_started_at_once_exactly_one_wins(tmp_path):
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(str(tmp_path), barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    assert outcomes[1] == "won" and outcomes[0].startswith("refused: another `mmc-sweep run`"), outcomes


# ----- other commands -------------------------------------------------------------------------

@pytest.mark.parametrize("directory, needle", [
    ("{tmp}/nothing-here", "nothing-here does not exist; give <storage>/<sweep name>"),
    ("{tmp}/a-file", "a-file is a file, not a sweep directory"),
    ("{tmp}/empty", "empty is not a sweep directory (no spec.yaml)"),
    ("{tmp}/lost", "lost holds a sweep's plan.parquet, results but no spec.yaml, which says what they are the results "
                   "of; put it back (a later version's predecessors are kept as spec-v<N>.yaml), or rerun the sweep "
                   "with its spec to write it again (finished tasks are kept)"),
    ("{tmp}", "is a storage directory, not a sweep; it holds the sweeps one, two: give one, e.g. {tmp}/one"),
    ("/", "is not a sweep directory"),
    ("", "is not a sweep directory"),
    (f"gs://user:{SECRET}@bucket/x", "gs://***@bucket/x is not a sweep directory"),
])
def test_status_and_report_of_a_non_sweep_directory_are_refused(directory, needle, tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "lost" / "results").mkdir(parents=True)          # a sweep whose spec.yaml was lost
    (tmp_path / "lost" / "plan.parquet").write_bytes(b"PAR1")
    for sweep in ("two", "one"):     # a storage directory: the sweeps under it are named
        (tmp_path / sweep).mkdir()
        (tmp_path / sweep / "spec.yaml").write_text("name: x\n")
    directory, needle = directory.format(tmp=tmp_path), needle.format(tmp=tmp_path)
    for command in ("status", "report"):
        code, out, err, elapsed = main(capsys, command, directory)
        assert_refused(code, err, tmp_path, needle, keep=("a-file", "empty", "lost", "one", "two"), out=out,
                       elapsed=elapsed)


def test_claims_of_a_path_that_does_not_exist_says_so(tmp_path, capsys):
    """`claims X` runs a spec file or judges a sweep directory: X missing is neither, and the error says both."""
    code, out, err, elapsed = main(capsys, "claims", str(tmp_path / "nothing-here"))
    assert_refused(code, err, tmp_path, "nothing-here does not exist: give a spec file (run, then judged) or a sweep "
                   "directory", out=out, elapsed=elapsed)


def test_plan_list_into_a_closed_pipe(tmp_path):
    """`mmc-sweep plan --list | head -1`: the reader leaves early; exit 0, no BrokenPipe noise."""
    seeds = "seeds=[" + ",".join(str(i) for i in range(60)) + "]"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(f"{sys.executable} -m orchestrator plan name=big '{seeds}' --list | head -1; "
                          "exit ${PIPESTATUS[0]}", shell=True, executable="/bin/bash", cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and "tasks" in proc.stdout
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr and "Exception" not in proc.stderr


def test_good_spec_passes_every_check_before_ray(tmp_path, cwd):
    """Control: the same helpers accept a valid spec, so the refusals above are specific."""
    spec = write_spec(tmp_path)
    with pytest.raises(RayStarted):
        cli.main(["run", str(spec), "--storage", str(tmp_path / "s")])
    assert load_spec(spec).name == "good"
    assert not (tmp_path / "s" / "good" / "run.lock").exists()
    assert written(cwd) == []


def test_a_tracking_uri_given_to_a_spec_without_mlflow_is_said_to_log_nothing(tmp_path, cwd, caplog):
    """`--tracking-uri` on a spec that turns MLflow off: the run goes on, saying nothing will be logged there."""
    spec = write_spec(tmp_path, mlflow={"enabled": False})
    with caplog.at_level("WARNING"), pytest.raises(RayStarted):
        cli.main(["run", str(spec), "--storage", str(tmp_path / "s"), "--tracking-uri", f"http://u:{SECRET}@127.0.0.1:1"])
    said = [r.getMessage() for r in caplog.records if "mlflow.tracking_uri" in r.getMessage()]
    assert len(said) == 1 and "`mlflow.enabled` is false: nothing is logged to MLflow" in said[0]
    assert SECRET not in said[0] and "http://***@127.0.0.1:1" in said[0]


def test_remote_storage_needs_and_accepts_a_tracking_uri_override():
    from orchestrator.spec.sweep_spec import SpecError

    spec_path = str(REPO / "sweeps" / "smoke.yaml")
    with pytest.raises(SpecError, match="tracking_uri"):
        cli.load([spec_path], {"storage": "s3://bucket/mmc-runs"})
    spec = cli.load([spec_path], {"storage": "s3://bucket/mmc-runs", "mlflow.tracking_uri": "http://127.0.0.1:5000"})
    assert spec.storage == "s3://bucket/mmc-runs" and spec.mlflow.tracking_uri == "http://127.0.0.1:5000"


def test_a_sweep_over_a_setting_no_planned_task_reads_is_refused_before_anything_is_written(cwd, capsys):
    """`finetune.lr` swept without a fine-tuning, `align.samples` without an aligned path: each combination
    would run the same tasks; plan and run name each key, exit 2, nothing written."""
    spec = cwd / "noop.yaml"
    spec.write_text("name: noop\nseeds: [0]\npaths: {pairs: [cue~nocue], kinds: [linear]}\n"
                    "finetune: {lr: {grid: [0.1, 0.2]}}\nalign: {samples: {grid: [2, 3]}}\n")
    for command in ("plan", "run"):
        code, out, err, elapsed = main(capsys, command, str(spec))
        assert_refused(code, err, cwd, "`finetune.lr` is swept, but no planned task reads it",
                       "`align.samples` is swept, but no planned task reads it", keep=("noop.yaml",), out=out,
                       elapsed=elapsed)
    code, out, err, _ = main(capsys, "plan", str(spec), "paths.kinds=[linear, aligned]", "finetune.lr=0.1")
    assert code == cli.EXIT_OK, err        # the aligned path reads align.samples: its two values plan two


def test_a_password_a_message_would_cut_is_hidden_when_it_comes_from_the_spec_file(tmp_path, capsys):
    """A spec file's storage with a blank and a quote in its password (a value known whole when the file is
    read): `plan --resolved` and the refusal show it as `***`, never a piece of it."""
    spec = tmp_path / "leaky.yaml"
    spec.write_text(f"name: leaky\nstorage: \"s3://AKIA:it's a {SECRET}@bucket/x\"\n"
                    f"mlflow: {{tracking_uri: \"http://bob:pw'{SECRET}@127.0.0.1:9\"}}\n")
    code, out, err, _ = main(capsys, "plan", str(spec), "--resolved")
    assert code == cli.EXIT_OK, err
    assert SECRET not in out + err and "it's a" not in out and "s3://***@bucket/x" in out, out
    spec.write_text(f"name: leaky\nstorage: \"s3://AKIA:it's a {SECRET}@bucket/x\"\n")
    code, out, err, elapsed = main(capsys, "plan", str(spec))
    assert_refused(code, err, None, "'s3://***@bucket/x'", out=out, elapsed=elapsed)
    assert "it's a" not in err


@pytest.mark.parametrize("argv", [["status", f"s3://u:a b {SECRET}@bucket/x"],
                                  ["run", str(REPO / "sweeps" / "smoke.yaml"), "--address", f"ray://u:a b {SECRET}@127.0.0.1:1"]])
def test_a_password_with_a_blank_in_a_flag_or_directory_is_hidden(argv, capsys, tmp_path):
    """A command-line argument is known whole: its URI's userinfo is hidden even where a blank cuts it."""
    code, out, err, elapsed = main(capsys, *argv)
    assert_refused(code, err, None, "***@", out=out, elapsed=elapsed)
    assert "a b" not in err, err
