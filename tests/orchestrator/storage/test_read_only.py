"""Every subcommand on a finished sweep whose storage is read-only. The suite runs as root, where chmod
cannot make a directory read-only, so the commands run in a private mount namespace in which the
storage is bind-mounted read-only (`unshare --mount`; the test is skipped where that is not
permitted).

What must hold: commands that only read (`status`, `status --json`, `status --watch`, `plan`,
`schema`, `claims DIR`) succeed; those that must write (`run`, `claims`, `report`, `compact`, `data download` into
it) exit 2 with one `error:` line naming the storage and saying it is read-only; never a traceback;
every file under the storage is left as it was.

The finished sweep is the spec that names only `paths.pairs: [cue~nocue]` (every other key its
default): it plans, runs and finishes, though the default `finetune.methods` are then not trained
(a default that cannot run is no request; orchestrator/spec/rules.py). Its tasks are computed by the
synthetic test runner (rows of every table, no training), so the module costs one short run. The
subcommands then run one after another in one interpreter inside one namespace (tests/support/cli_batch.py:
each through `cli.main` as `python -m orchestrator` runs it, its output, exit status and the storage's
snapshot kept apart), so the module pays two interpreter start-ups, not one per subcommand.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import cli
from tests.conftest import clean_env
from tests.support import runners
from tests.support.cli_batch import run_batch, snapshot

pytestmark = pytest.mark.slow    # a sweep, then every subcommand in a read-only mount namespace

SYNTHETIC = runners.name("synthetic")
RUN_TIMEOUT_S = 600
COMMAND_TIMEOUT_S = 180
SPEC_TEXT = "name: ro\nseeds: [0]\npaths: {pairs: [cue~nocue]}\n"
PLANNED = 7    # 2 pretrained models, a linear path, a midpoint + path, an alignment + path
# the script run inside the namespace: $1 becomes read-only, the rest is the command
READ_ONLY = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'


def read_only(storage: Path) -> tuple[str, ...]:
    """The command line that runs what follows it in a mount namespace where `storage` is read-only."""
    return ("unshare", "--mount", "--propagation", "private", "--", "sh", "-c", READ_ONLY, "sh", str(storage))


def in_read_only(storage: Path, *command: str, timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([*read_only(storage), *command], cwd=storage.parent, env=clean_env(), capture_output=True,
                          text=True, timeout=timeout)


def not_permitted(tmp: Path) -> str | None:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "`unshare` and `mount` are needed to make storage read-only for root"
    probe = tmp / "probe"
    probe.mkdir()
    try:
        proc = in_read_only(probe, "sh", "-c", "touch \"$0/file\"", str(probe), timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`unshare --mount` failed: {exc}"
    if "Read-only file system" not in proc.stderr or (probe / "file").exists():
        return f"a read-only bind mount in a mount namespace is not permitted here: {proc.stderr.strip()[:300]}"
    return None


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("read-only")
    reason = not_permitted(tmp)
    if reason:
        pytest.skip(reason)
    spec, storage = tmp / "ro.yaml", tmp / "storage"
    spec.write_text(SPEC_TEXT)
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "run", str(spec), "--storage", str(storage),
                           "--num-cpus", "2", "--runner", SYNTHETIC], cwd=tmp, env=clean_env(),
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    return {"spec": spec, "storage": storage, "dir": storage / "ro", "proc": proc, "before": snapshot(storage)}


def test_a_spec_naming_only_its_pairs_plans_and_runs(finished):
    """`paths.pairs: [cue~nocue]` and defaults otherwise: the default fine-tuning methods are not asked
    for, so nothing is refused; the run finishes every planned task and writes its report."""
    proc = finished["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"done {PLANNED}," in proc.stderr + proc.stdout and "failed 0" in proc.stderr + proc.stdout
    assert (finished["dir"] / "report" / "report.html").is_file()


def _sweep(finished) -> str:
    return str(finished["dir"])


READS = {   # command -> (arguments after `python -m orchestrator`, a check of stdout)
    "status": (lambda f: ["status", _sweep(f)], lambda out: f"{PLANNED}" in out and "finished" in out),
    "status --json": (lambda f: ["status", "--json", _sweep(f)],
                      lambda out: json.loads(out)["total"]["finished"] == PLANNED),
    "status --watch": (lambda f: ["status", "--watch", "--interval", "0.5", _sweep(f)], lambda out: "finished" in out),
    "plan": (lambda f: ["plan", str(f["spec"]), f"storage={f['storage']}"], lambda out: f"{PLANNED} tasks" in out),
    "plan --json": (lambda f: ["plan", "--json", str(f["spec"]), f"storage={f['storage']}"],
                    lambda out: json.loads(out)["tasks"] == PLANNED),
    "schema": (lambda f: ["schema"], lambda out: json.loads(out)["title"] == "mmc-sweep spec"),
    "claims DIR": (lambda f: ["claims", _sweep(f)], lambda out: "(a)" in out and "(d)" in out),
}
WRITES = {  # command -> (arguments, what the one error line says it writes)
    "run": (lambda f: ["run", str(f["spec"]), "--storage", str(f["storage"]), "--num-cpus", "2", "--runner", SYNTHETIC],
            "a run writes its lock"),
    "claims": (lambda f: ["claims", str(f["spec"]), "--storage", str(f["storage"]), "--num-cpus", "2"],
               "a run writes its lock"),
    "report": (lambda f: ["report", _sweep(f)], "`mmc-sweep report` writes"),
    "compact": (lambda f: ["compact", _sweep(f)], "compaction writes"),
    "data download": (lambda f: ["data", "download", "cifar10", "--root", str(f["storage"] / "data")],
                      "cannot write the dataset there (Read-only file system)"),
}


def test_the_table_names_every_subcommand():
    """A new subcommand must say here what it does on read-only storage."""
    parser = cli.build_parser()
    names = set()
    for action in parser._subparsers._group_actions:   # noqa: SLF001 - argparse has no public listing
        names |= set(action.choices)
    assert names == {name.split()[0] for name in (*READS, *WRITES)}


@pytest.fixture(scope="module")
def commands(finished, tmp_path_factory):
    """Every command of READS and WRITES, run in one read-only namespace (tests/support/cli_batch.py):
    name -> {"code", "out", "err", "snapshot"}."""
    storage = finished["storage"]
    batch = {name: args(finished) for name, (args, _) in {**READS, **WRITES}.items()}
    proc, done = run_batch(batch, tmp_path_factory.mktemp("read-only-commands"), clean_env(), storage.parent,
                           prefix=read_only(storage), root=storage, timeout=COMMAND_TIMEOUT_S * len(batch))
    assert proc.returncode == 0 and sorted(done) == sorted(batch), proc.stdout[-3000:] + proc.stderr[-3000:]
    return done


@pytest.mark.parametrize("name", READS)
def test_reading_commands_work_on_read_only_storage(finished, commands, name):
    _, check = READS[name]
    proc = commands[name]
    assert "Traceback" not in proc["err"], proc["err"][-3000:]
    assert proc["code"] == 0, proc["err"][-3000:]
    assert check(proc["out"]), proc["out"][-3000:]
    assert proc["snapshot"] == finished["before"] == snapshot(finished["storage"])


@pytest.mark.parametrize("name", WRITES)
def test_writing_commands_refuse_read_only_storage_in_one_line(finished, commands, name):
    _, writes = WRITES[name]
    proc = commands[name]
    assert "Traceback" not in proc["err"], proc["err"][-3000:]
    assert proc["code"] == cli.EXIT_BAD_INPUT, proc["err"][-3000:]
    lines = proc["err"].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert writes in lines[0], lines[0]
    if name != "data download":
        assert f"the storage `{finished['dir']}` is read-only" in lines[0], lines[0]
    assert proc["snapshot"] == finished["before"] == snapshot(finished["storage"])
