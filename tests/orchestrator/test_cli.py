"""`mmc-sweep` in-process (`orchestrator.cli.main`): every flag reaches what it overrides, the defaults
are the documented ones, the exit status is 0/1/2/130 as the module docstring says, results go to
stdout and problems to stderr as one line. `run_sweep`, `print_status`, `write_report`, `print_claims`,
`compact` and `download` are replaced by stand-ins that record what they were given: no Ray, no
subprocess, nothing computed. (Bad inputs end to end: test_cli_errors.py.)
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator import cli
from orchestrator.spec import command_line
from orchestrator.errors import SweepError
from orchestrator.run import capacity
from tests.conftest import SMOKE_SPEC, write_spec


@pytest.fixture
def sweeps(monkeypatch):
    """`run_sweep` replaced: each call's spec and keyword arguments; `ok` says how the sweep ended."""
    from orchestrator.run import sweep

    calls = []
    state = SimpleNamespace(ok=True, raises=None, calls=calls)

    def run_sweep(spec, **kwargs):
        calls.append((spec, kwargs))
        if state.raises is not None:
            raise state.raises
        return SimpleNamespace(ok=state.ok, layout=SimpleNamespace(root="the-layout"))

    monkeypatch.setattr(sweep, "run_sweep", run_sweep)
    return state


@pytest.fixture
def judged(monkeypatch):
    """`print_claims` replaced: the layouts it was asked to judge."""
    from orchestrator.report import build

    layouts = []
    monkeypatch.setattr(build, "print_claims", lambda layout, log=print: layouts.append(layout) or [])
    return layouts


def sweep_dir(tmp_path: Path, name: str = "tiny") -> Path:
    """A sweep directory as `status`/`report`/`compact`/`claims DIR` expect: <storage>/<sweep>/spec.yaml."""
    directory = tmp_path / "runs" / name
    directory.mkdir(parents=True)
    (directory / "spec.yaml").write_text(SMOKE_SPEC.read_text())
    return directory


def one_error_line(err: str, *needles: str) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


# ----- run: flags reach what they override

def test_every_run_flag_reaches_the_spec_key_or_the_sweep_argument_it_overrides(tmp_path, sweeps, capsys):
    spec = write_spec(tmp_path)
    code = cli.main(["run", str(spec), "--storage", str(tmp_path / "elsewhere"), "--max-concurrent", "3",
                     "--tracking-uri", "http://127.0.0.1:5000", "--num-cpus", "2", "--address", "127.0.0.1:6379",
                     "--wait-for-nodes", "0", "--autoscaler-config", "cluster.yaml", "--new-version",
                     "--no-report", "--runner", "pkg.mod:fn"])
    assert code == cli.EXIT_OK
    ((got, kwargs),) = sweeps.calls
    assert got.storage == str(tmp_path / "elsewhere") and got.max_concurrent == 3
    assert got.mlflow.tracking_uri == "http://127.0.0.1:5000"
    assert kwargs == {"runner": "pkg.mod:fn", "num_cpus": 2, "ray_address": "127.0.0.1:6379", "report": False,
                      "new_version": True, "autoscaler_config": "cluster.yaml", "wait_for_nodes_s": 0.0}


def test_run_without_flags_keeps_the_specs_keys_and_the_documented_defaults(tmp_path, sweeps):
    """No flag: the spec's own storage, a report at the end, the real runner, all CPUs of a local Ray
    (None), $RAY_ADDRESS or a local Ray (None), the declared wait, no new version."""
    spec = write_spec(tmp_path, max_concurrent=5)
    assert cli.main(["run", str(spec)]) == cli.EXIT_OK
    ((got, kwargs),) = sweeps.calls
    assert got.storage == str(tmp_path / "runs") and got.max_concurrent == 5
    assert kwargs == {"runner": "real", "num_cpus": None, "ray_address": None, "report": True, "new_version": False,
                      "autoscaler_config": None, "wait_for_nodes_s": capacity.DEFAULT_WAIT_FOR_NODES_S}


def test_a_flag_value_is_passed_as_a_string_even_when_it_reads_as_a_number(tmp_path, sweeps, monkeypatch):
    """`--storage 2024` is the directory ./2024, not the YAML integer 2024 (flags are JSON-quoted)."""
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path)
    assert cli.main(["run", str(spec), "--storage", "2024"]) == cli.EXIT_OK
    ((got, _),) = sweeps.calls
    assert Path(got.storage).name == "2024"


def test_overrides_given_after_the_options_still_apply(tmp_path, sweeps):
    """`run SPEC --storage X key=value`: argparse leaves the override behind the options; it still counts."""
    spec = write_spec(tmp_path)
    assert cli.main(["run", str(spec), "--storage", str(tmp_path / "s"), "seeds=[7, 8]", "pretrain.epochs=2"]) == 0
    ((got, _),) = sweeps.calls
    assert got.storage == str(tmp_path / "s") and tuple(got.seeds) == (7, 8)
    assert got.variants[0].pretrain.epochs == 2


@pytest.mark.parametrize("ok, code", [(True, 0), (False, 1)])
def test_run_exits_1_when_some_tasks_failed_or_were_skipped(ok, code, tmp_path, sweeps, capsys):
    sweeps.ok = ok
    assert cli.main(["run", str(write_spec(tmp_path))]) == code


@pytest.mark.parametrize("flags", [["--wait-for-nodes", "0"], ["--wait-for-nodes", str(capacity.MAX_WAIT_FOR_NODES_S)],
                                   ["--num-cpus", "1"]], ids=" ".join)
def test_the_bounds_of_the_run_flags_are_allowed(flags, tmp_path, sweeps, capsys):
    """'give seconds between 0 and MAX' and 'a whole number of CPUs >= 1': the ends are allowed."""
    assert cli.main(["run", str(write_spec(tmp_path)), *flags]) == cli.EXIT_OK, capsys.readouterr().err
    assert len(sweeps.calls) == 1


def test_a_problem_is_one_error_line_on_stderr_and_exit_2(tmp_path, sweeps, capsys):
    sweeps.raises = SweepError("the cluster cannot run this sweep")
    assert cli.main(["run", str(write_spec(tmp_path))]) == 2      # the module docstring's "2 bad input"
    out, err = capsys.readouterr()
    assert out == ""
    one_error_line(err, "the cluster cannot run this sweep")


def test_ctrl_c_exits_130_with_the_resume_hint_on_stderr(tmp_path, sweeps, capsys):
    sweeps.raises = KeyboardInterrupt()
    assert cli.main(["run", str(write_spec(tmp_path))]) == 130    # as a shell reports Ctrl-C (128 + SIGINT)
    out, err = capsys.readouterr()
    assert out == "" and "rerun the same command to resume" in err and "Traceback" not in err


# ----- argparse's own errors

@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["data", "download", "cifar10"], ["status"],
                                  ["status", "somewhere", "extra"], ["report", "somewhere", "--bogus"],
                                  ["run", "--max-concurrent", "2.5"]], ids=lambda a: " ".join(a) or "nothing")
def test_a_bad_command_line_is_one_error_on_stderr_and_exit_2(argv, sweeps, capsys):
    """Usage and `error:` on stderr (stdout stays for results), exit 2, nothing run."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == ""
    assert err.startswith("usage: mmc-sweep") and err.count("error: ") == 1 and "Traceback" not in err, err
    assert sweeps.calls == []


# ----- claims

def test_claims_of_a_spec_passes_its_flags_and_judges_what_the_run_wrote(tmp_path, sweeps, judged):
    spec = write_spec(tmp_path)
    code = cli.main(["claims", str(spec), "--storage", str(tmp_path / "s"), "--max-concurrent", "4",
                     "--num-cpus", "3", "--address", "127.0.0.1:6379", "--new-version"])
    assert code == cli.EXIT_OK
    ((got, kwargs),) = sweeps.calls
    assert got.storage == str(tmp_path / "s") and got.max_concurrent == 4   # smoke.yaml says 2
    assert kwargs == {"num_cpus": 3, "ray_address": "127.0.0.1:6379", "new_version": True}
    assert [layout.root for layout in judged] == ["the-layout"]


def test_claims_exits_1_when_some_tasks_failed(tmp_path, sweeps, judged):
    sweeps.ok = False
    assert cli.main(["claims", str(write_spec(tmp_path))]) == cli.EXIT_TASKS_FAILED


@pytest.mark.parametrize("extra", [["seeds=[1]"], ["--storage", "x"], ["--max-concurrent", "2"], ["--new-version"]],
                         ids=" ".join)
def test_claims_of_a_sweep_directory_refuses_what_only_a_run_takes(extra, tmp_path, sweeps, judged, capsys):
    directory = sweep_dir(tmp_path)
    assert cli.main(["claims", str(directory), *extra]) == cli.EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert out == "" and sweeps.calls == [] and judged == []
    one_error_line(err, "judges a sweep directory as it is")


def test_claims_of_a_sweep_directory_given_as_a_file_uri_judges_it(tmp_path, sweeps, judged, capsys):
    """A URI is a sweep directory, never a spec (a spec is a local file)."""
    directory = sweep_dir(tmp_path)
    assert cli.main(["claims", f"file://{directory}"]) == cli.EXIT_OK, capsys.readouterr().err
    assert sweeps.calls == [] and [layout.sweep for layout in judged] == ["tiny"]


def test_claims_of_an_unreadable_sweep_directory_is_one_error_line(tmp_path, monkeypatch, capsys):
    from orchestrator.report import build

    def unreadable(layout, log=print):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(build, "print_claims", unreadable)
    assert cli.main(["claims", str(sweep_dir(tmp_path))]) == cli.EXIT_BAD_INPUT
    one_error_line(capsys.readouterr().err, "cannot judge the claims of")


# ----- status

@pytest.fixture
def statuses(monkeypatch):
    from orchestrator import status

    calls = []
    state = SimpleNamespace(calls=calls, code=0, raises=None)

    def print_status(layout, watch=False, interval_s=2.0, stream=None, as_json=False):
        calls.append({"sweep": layout.sweep, "watch": watch, "interval_s": interval_s, "as_json": as_json})
        if state.raises is not None:
            raise state.raises
        return state.code

    monkeypatch.setattr(status, "print_status", print_status)
    return state


def test_status_flags_reach_print_status_and_its_exit_status_is_kept(tmp_path, statuses):
    directory = sweep_dir(tmp_path)
    statuses.code = 1
    assert cli.main(["status", str(directory), "--watch", "--interval", "3600", "--json"]) == 1
    assert statuses.calls == [{"sweep": "tiny", "watch": True, "interval_s": 3600.0, "as_json": True}]
    assert cli.main(["status", str(directory), "--interval", "0.1"]) == 1        # 'between 0.1 and 3600'
    assert statuses.calls[-1]["interval_s"] == 0.1


def test_status_defaults_to_one_text_snapshot_refreshed_every_2_seconds(tmp_path, statuses):
    assert cli.main(["status", str(sweep_dir(tmp_path))]) == 0
    assert statuses.calls == [{"sweep": "tiny", "watch": False, "interval_s": 2.0, "as_json": False}]


@pytest.mark.parametrize("problem", [OSError(5, "Input/output error"), ValueError("garbled plan.parquet")],
                         ids=lambda e: type(e).__name__)
def test_status_of_unreadable_state_is_one_error_line(problem, tmp_path, statuses, capsys):
    statuses.raises = problem
    assert cli.main(["status", str(sweep_dir(tmp_path))]) == cli.EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert out == ""
    one_error_line(err, "cannot read the status of")


# ----- report, compact, data download

def test_report_prints_its_note_on_stderr_and_its_text_and_page_on_stdout(tmp_path, monkeypatch, capsys):
    from orchestrator.report import build

    directory = sweep_dir(tmp_path)
    page = str(directory / "report" / "report.html")
    monkeypatch.setattr(build, "write_report", lambda layout: build.Report(html=page, text="THE TABLES",
                                                                            note="NOTE: rebuilt the plan"))
    assert cli.main(["report", str(directory)]) == cli.EXIT_OK
    out, err = capsys.readouterr()
    assert "NOTE: rebuilt the plan" in err and "NOTE" not in out
    assert out.splitlines() == ["THE TABLES", f"report: {page}"]


def test_report_of_a_plan_that_cannot_be_rebuilt_is_one_error_line(tmp_path, monkeypatch, capsys):
    from orchestrator.report import build

    def unplannable(layout):
        raise ValueError("the stored spec cannot be planned")
    monkeypatch.setattr(build, "write_report", unplannable)
    assert cli.main(["report", str(sweep_dir(tmp_path))]) == cli.EXIT_BAD_INPUT
    one_error_line(capsys.readouterr().err, "the stored spec cannot be planned")


def test_compact_merges_every_table_into_one_part_and_prints_the_summary(tmp_path, monkeypatch, capsys):
    from orchestrator.results import compact

    asked = []
    monkeypatch.setattr(compact, "compact", lambda layout, **kwargs: asked.append(kwargs) or {})
    monkeypatch.setattr(compact, "summary", lambda done: "SUMMARY")
    assert cli.main(["compact", str(sweep_dir(tmp_path))]) == cli.EXIT_OK
    assert asked == [{"one_part": True}]
    assert capsys.readouterr().out == "nothing to compact: every table is already in its parts\n"   # {}: none changed


def test_data_download_reports_success_on_stdout(tmp_path, monkeypatch, capsys):
    import tasks.datasets

    fetched = []
    monkeypatch.setattr(tasks.datasets, "download", lambda name, root: fetched.append((name, root)))
    root = str(tmp_path / "data")
    assert cli.main(["data", "download", "cifar10", "--root", root]) == cli.EXIT_OK
    out, err = capsys.readouterr()
    assert fetched == [("cifar10", root)] and out == f"cifar10 is ready under {root}\n" and err == ""


# ----- plan

def test_plan_json_lists_tasks_only_with_list_and_counts_the_combinations_of_every_axis(capsys):
    """Two independent grids (2 and 3 values) combine as a grid: 6 combinations from 2 axes."""
    grids = ["finetune.lr={grid: [0.01, 0.1]}", "pretrain.epochs={grid: [1, 2, 3]}"]
    assert cli.main(["plan", str(SMOKE_SPEC), *grids, "--json"]) == cli.EXIT_OK
    out = json.loads(capsys.readouterr().out)
    assert out["combinations"] == 6 and "task_list" not in out
    assert sorted(key for group in out["swept"] for key in group) == ["finetune.lr", "pretrain.epochs"]


def test_plan_text_names_the_combinations_and_lists_tasks_only_with_list(capsys):
    grids = ["finetune.lr={grid: [0.01, 0.1]}", "pretrain.epochs={grid: [1, 2, 3]}"]
    assert cli.main(["plan", str(SMOKE_SPEC), *grids]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "(6 combinations)" in out and "parents=" not in out and "nothing was run" in out
    assert cli.main(["plan", str(SMOKE_SPEC), "--list"]) == cli.EXIT_OK
    assert "parents=-" in capsys.readouterr().out     # a pretraining task has no parent


def test_plan_says_which_inherited_pairs_the_proportions_cannot_train(tmp_path, capsys):
    """A spec that extends smoke.yaml does not list its pairs: with `cue_proportions: [0.8]`, smoke's
    cue~nocue cannot run, so the plan says so instead of planning less in silence (text and --json).
    The same pairs in the user's own file are refused (tests/orchestrator/graph/test_graph.py)."""
    spec = tmp_path / "mine.yaml"
    spec.write_text(f"name: mine\nextends: {SMOKE_SPEC}\ncue_proportions: [0.8]\n")
    assert cli.main(["plan", str(spec), "--json"]) == cli.EXIT_OK
    out = json.loads(capsys.readouterr().out)
    # and, cue~nocue gone, claim (b) has no independent pair to compare with; smoke's CBFT has no naive_cued
    note, controls, cued = out["notes"]
    assert note.startswith("`paths.pairs` (extends:") and "left out 'cue~nocue' (needs both 0.0" in note, note
    assert controls.startswith("'pretrained~ft' is planned without a pair of independently trained models"), controls
    assert cued.startswith("`finetune.methods` has 'cbft' without 'naive_cued'"), cued
    assert set(out["pairs"]) == {"pretrained~ft:naive", "pretrained~ft:cbft"}
    assert cli.main(["plan", str(spec)]) == cli.EXIT_OK
    assert f"note: {note}\n" in capsys.readouterr().out
    assert cli.main(["plan", str(SMOKE_SPEC), "--json"]) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out)["notes"] == [cued]


@pytest.mark.parametrize("flags", [("--json", "--explain"), ("--list", "--resolved"), ("--list", "--explain")])
def test_plan_flags_that_cannot_both_be_shown_are_refused_not_one_ignored(capsys, flags):
    assert cli.main(["plan", str(SMOKE_SPEC), *flags]) == cli.EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert out == ""
    one_error_line(err, f"{flags[0]} and {flags[1]}")


def test_a_reader_that_left_the_pipe_is_no_error(monkeypatch):
    """`mmc-sweep plan --list | head -1`: BrokenPipeError ends the command with exit 0, and stdout is
    pointed at /dev/null so that Python's final flush cannot fail again."""
    import os
    import sys

    def broken(argv):
        raise BrokenPipeError(32, "Broken pipe")
    redirected = []
    monkeypatch.setattr(cli, "_main", broken)
    monkeypatch.setattr(sys, "stdout", SimpleNamespace(fileno=lambda: 97))
    monkeypatch.setattr(os, "open", lambda path, flags: 98 if path == os.devnull else pytest.fail(path))
    monkeypatch.setattr(os, "dup2", lambda fd, fd2: redirected.append((fd, fd2)))
    assert cli.main(["plan", "--list"]) == cli.EXIT_OK
    assert redirected == [(98, 97)]


@pytest.mark.parametrize("flags, needle", [
    (["--num-cpus", "0"], "--num-cpus 0 is not allowed"),
    (["--wait-for-nodes", "-0.5"], "--wait-for-nodes -0.5 is not allowed"),
    (["--max-concurrent", "0"], "`max_concurrent` (--max-concurrent): 0 is not allowed"),
    (["--tracking-uri", ""], "`mlflow.tracking_uri` (--tracking-uri): '' is not allowed"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_a_flag_just_outside_its_bounds_is_refused_naming_the_flag(flags, needle, tmp_path, sweeps, capsys):
    """Validated like the key it overrides, even when the value is falsy (0, ''); nothing is run."""
    assert cli.main(["run", str(write_spec(tmp_path)), *flags]) == cli.EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert out == "" and sweeps.calls == [] and needle in err
    assert err.startswith("error: ") and err.count("error: ") == 1 and "Traceback" not in err, err


# ----- checks before any work

def test_report_refuses_a_file_where_the_report_directory_belongs(tmp_path, monkeypatch, capsys):
    from orchestrator.report import build

    directory = sweep_dir(tmp_path)
    (directory / "report").write_text("not a directory\n")
    written = []
    monkeypatch.setattr(build, "write_report", lambda layout: written.append(layout))
    assert cli.main(["report", str(directory)]) == cli.EXIT_BAD_INPUT
    assert written == [] and "report" in capsys.readouterr().err


def test_compact_refuses_a_symbolic_link_in_the_sweep_directory(tmp_path, monkeypatch, capsys):
    """A link could lead the merged part files (and the deletion of fragments) outside the storage."""
    from orchestrator.results import compact

    directory = sweep_dir(tmp_path)
    (tmp_path / "outside").mkdir()
    (directory / "results").symlink_to(tmp_path / "outside")
    asked = []
    monkeypatch.setattr(compact, "compact", lambda layout, **kwargs: asked.append(kwargs) or {})
    assert cli.main(["compact", str(directory)]) == cli.EXIT_BAD_INPUT
    assert asked == [] and "results" in capsys.readouterr().err


def test_data_download_into_a_file_or_below_one_is_refused_before_downloading(tmp_path, monkeypatch, capsys):
    import tasks.datasets

    fetched = []
    monkeypatch.setattr(tasks.datasets, "download", lambda name, root: fetched.append(root))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for root in (blocker, blocker / "data"):
        assert cli.main(["data", "download", "cifar10", "--root", str(root)]) == cli.EXIT_BAD_INPUT
        one_error_line(capsys.readouterr().err, f"--root {root}: {blocker} is a file, not a directory")
    assert fetched == []


@pytest.mark.parametrize("root, needle", [("a" * 5000, "is not allowed: File name too long; give a directory"),
                                         ("/tmp/d\x01x", "--root '/tmp/d\\x01x' has a control character")])
def test_data_download_into_a_root_no_directory_can_have_is_refused_before_downloading(root, needle, monkeypatch, capsys):
    """A root too long for a path (pathlib raised ENAMETOOLONG: a traceback) or with a control character
    (created, then printed raw) is one error line, the root shortened and escaped."""
    import tasks.datasets

    fetched = []
    monkeypatch.setattr(tasks.datasets, "download", lambda name, root: fetched.append(root))
    assert cli.main(["data", "download", "digits", "--root", root]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    one_error_line(err, needle)
    assert len(err) < 400 and fetched == []


def test_data_download_of_a_dataset_it_cannot_fetch_is_one_error_line(tmp_path, monkeypatch, capsys):
    import tasks.datasets

    def refuse(name, root):
        raise tasks.datasets.DataError(f"unknown dataset `{name}`")
    monkeypatch.setattr(tasks.datasets, "download", refuse)
    assert cli.main(["data", "download", "cifar11", "--root", str(tmp_path)]) == cli.EXIT_BAD_INPUT
    one_error_line(capsys.readouterr().err, "unknown dataset `cifar11`")


def test_a_bad_environment_variable_stops_every_command_before_it_runs(tmp_path, sweeps, monkeypatch, capsys):
    """knobs.py: the CLI checks every variable before any work, for every command (not only inside
    `run_sweep`): `plan`, which reads none of them, refuses too."""
    monkeypatch.setenv("MMC_PROGRESS_INTERVAL_S", "soon")
    for argv in (["plan", str(SMOKE_SPEC)], ["run", str(write_spec(tmp_path))]):
        assert cli.main(argv) == cli.EXIT_BAD_INPUT
        out, err = capsys.readouterr()
        assert out == "" and "`MMC_PROGRESS_INTERVAL_S`='soon'" in err
    assert sweeps.calls == []


@pytest.mark.parametrize("command", ["status", "report", "compact", "claims", "plan"])
@pytest.mark.parametrize("directory, shown", [("/tmp/a\x1b[2Jb", "'/tmp/a\\x1b[2Jb'"), ("/tmp/" + "a" * 5000, "/tmp/aaa")])
def test_a_path_argument_is_repeated_escaped_and_short(command, directory, shown, capsys):
    """A DIR or SPEC with a control character (an escape sequence the terminal would act on) is repeated
    escaped, one too long to read cut (it was repeated whole, twice, 10,000 characters for a 5,000-character
    path): whatever the command, the error names it readably."""
    assert cli.main([command, directory]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"error: {shown}") and "Traceback" not in err, err
    assert "\x1b" not in err and len(err) < 1000
    if command not in ("claims", "plan"):   # those read it as a spec: a SpecError lists its problem below
        one_error_line(err)


def test_the_mmc_sweep_command_finds_a_model_of_your_own_in_the_working_directory(tmp_path):
    """`mmc-sweep run examples/custom_model.yaml` from the checkout (README): the command's path starts with
    its bin directory, so the working directory is added, last (nothing there takes an installed package's
    place), as Ray adds it to its workers' path."""
    import shutil
    import subprocess
    import sys

    command = Path(sys.executable).parent / "mmc-sweep"
    if not command.exists():
        pytest.skip("no mmc-sweep command beside this python")
    shutil.copy(Path(__file__).resolve().parents[2] / "examples" / "custom_model.py", tmp_path / "my_model.py")
    (tmp_path / "spec.yaml").write_text("name: own\nmodels: ['my_model:build']\nseeds: [0]\n"
                                        "paths: {pairs: [cue~nocue], kinds: [linear]}\n")
    got = subprocess.run([str(command), "plan", "spec.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr[-2000:]
    assert "pretrain" in got.stdout


def test_the_working_directory_goes_last_on_the_path_and_only_once(monkeypatch, tmp_path):
    import sys

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["/bin-dir", "/site-packages"])
    command_line.find_plugins_here()
    command_line.find_plugins_here()
    assert sys.path == ["/bin-dir", "/site-packages", str(tmp_path)]


@pytest.mark.parametrize("command, said", [("report", "interrupted\n"),
                                           ("run", "interrupted: finished tasks are kept; rerun the same command "
                                                   "to resume\n")])
def test_ctrl_c_says_resume_only_for_commands_that_run_tasks(monkeypatch, capsys, command, said):
    """Ctrl-C on `report` (or `status`, `plan`) ran no task: it says "interrupted", exit 130, not the run's
    advice to rerun the same command to resume."""
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, f"cmd_{command}", interrupted)
    assert cli.main([command, str(SMOKE_SPEC)]) == cli.EXIT_INTERRUPTED
    assert capsys.readouterr().err.endswith(said)


def test_ctrl_c_on_claims_says_its_finished_tasks_are_kept(monkeypatch, capsys):
    """`claims` runs the sweep's tasks as `run` does: Ctrl-C on it says the finished ones are kept and that
    the same command resumes, exit 130."""
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "cmd_claims", interrupted)
    assert cli.main(["claims", str(SMOKE_SPEC)]) == cli.EXIT_INTERRUPTED
    assert capsys.readouterr().err.endswith("interrupted: finished tasks are kept; rerun the same command to resume\n")


def test_compact_summarises_only_the_tables_it_changed(tmp_path, monkeypatch, capsys):
    """`mmc-sweep compact`: the summary names the tables whose files it merged, not those already in one part;
    where none changed, it says there was nothing to compact."""
    from orchestrator.results import compact

    done = {"paths": SimpleNamespace(changed=False), "tasks": SimpleNamespace(changed=True)}
    summarised = []
    monkeypatch.setattr(compact, "compact", lambda layout, **kwargs: dict(done))
    monkeypatch.setattr(compact, "summary", lambda changed: summarised.append(sorted(changed)) or "SUMMARY")
    directory = str(sweep_dir(tmp_path))
    assert cli.main(["compact", directory]) == cli.EXIT_OK
    assert summarised == [["tasks"]] and capsys.readouterr().out == "SUMMARY\n"
    done["tasks"] = SimpleNamespace(changed=False)
    assert cli.main(["compact", directory]) == cli.EXIT_OK
    assert summarised == [["tasks"]]
    assert capsys.readouterr().out == "nothing to compact: every table is already in its parts\n"


def test_data_download_into_a_root_of_blanks_is_refused_before_downloading(monkeypatch, capsys):
    """`--root '  '` names no directory (blanks only, as '' would be the current directory): refused, nothing
    fetched."""
    import tasks.datasets

    fetched = []
    monkeypatch.setattr(tasks.datasets, "download", lambda name, root: fetched.append(root))
    assert cli.main(["data", "download", "digits", "--root", "   "]) == cli.EXIT_BAD_INPUT
    one_error_line(capsys.readouterr().err, "--root '   ' is not allowed; give the directory to download the dataset into")
    assert fetched == []


def test_plan_json_lists_only_the_labels_each_task_has(capsys):
    """`plan --json --list`: each task's labels are those it has (a pretraining task names no pair type), never
    a key with null, so a script reads a label's presence as the task having it."""
    assert cli.main(["plan", str(SMOKE_SPEC), "--json", "--list"]) == cli.EXIT_OK
    tasks = json.loads(capsys.readouterr().out)["task_list"]
    assert tasks and not [(t["task_id"], k) for t in tasks for k, v in t.items() if v is None]
    pretrain = next(t for t in tasks if t["kind"] == "pretrain")
    assert "pair_type" not in pretrain and "seed" in pretrain and pretrain["parents"] == []
    assert any("pair_type" in t for t in tasks)
