"""Environment variables: declared once (`orchestrator.knobs`), read nowhere else, listed in README as
declared, validated (a non-number is one `error:` line and exit 2, before any work), and kept out of
the tests by conftest."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import cli, knobs
from tests.conftest import FOREIGN_ENV, REPO, clean_env

NAME = re.compile(r"^MMC_[A-Z0-9_]+$")


def env_names_read_outside_knobs(root: Path = REPO) -> list[str]:
    """`file:line name` of every string that is exactly an `MMC_*` name in `orchestrator/` or `tasks/`
    outside knobs.py: an environment variable looked up (or set) by a module that does not declare it."""
    found = []
    for package in ("orchestrator", "tasks"):
        for path in sorted((root / package).rglob("*.py")):
            if path == root / "orchestrator" / "knobs.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME.match(node.value):
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.value}")
    return found


def test_no_module_but_knobs_names_an_mmc_variable():
    found = env_names_read_outside_knobs()
    assert not found, "read MMC_* variables through orchestrator.knobs (declare them there):\n  " + "\n  ".join(found)


def test_the_finder_sees_a_lookup_by_literal_and_ignores_knobs_and_prose(tmp_path):
    for name, text in {"orchestrator/knobs.py": 'A = "MMC_DECLARED_S"\n',
                       "orchestrator/run/work.py": '"""Set MMC_X_S to ..."""\nimport os\n'
                                                   'X = os.environ.get("MMC_SNEAKY_S", "1")\n',
                       "tasks/train.py": 'import os\nY = os.getenv("MMC_TOO")\n'}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert env_names_read_outside_knobs(tmp_path) == ["orchestrator/run/work.py:3 MMC_SNEAKY_S",
                                                      "tasks/train.py:2 MMC_TOO"]


def test_readme_lists_every_variable_as_declared():
    readme = (REPO / "README.md").read_text()
    assert knobs.markdown_table() in readme, ("README's table of environment variables differs from "
                                              "orchestrator/knobs.py: paste `python -m orchestrator.knobs`")
    submit_sh = set(re.findall(r"\b(MMC_[A-Z0-9_]+)", (REPO / "cluster" / "submit.sh").read_text()))
    assert set(re.findall(r"`(MMC_[A-Z0-9_]+)`", readme)) <= set(knobs.KNOBS) | submit_sh | {"MMC_CHROMIUM"}


def test_every_variable_is_kept_out_of_the_tests():
    assert set(knobs.KNOBS) <= set(FOREIGN_ENV)


NUMBERS = [k for k in knobs.KNOBS.values() if k.type is not str]


@pytest.mark.parametrize("knob", NUMBERS, ids=lambda k: k.name)
def test_each_variable_is_read_validated(knob):
    assert knobs.read(knob, {}) == knob.default
    assert knobs.read(knob, {knob.name: " "}) == knob.default                       # empty: unset
    assert knobs.read(knob, {knob.name: str(knob.maximum)}) == knob.maximum
    for bad, why in (("abc", "is not a"), ("1e999", "is not a"), ("nan", "is not a"),
                     (str(knob.maximum * 2 + 1), "is out of range"), (str(knob.minimum - 1), "is out of range")):
        with pytest.raises(knobs.KnobError, match=re.escape(f"`{knob.name}`={bad!r} {why}")) as err:
            knobs.read(knob, {knob.name: bad})
        assert "allowed: " in str(err.value) and err.value.exit_code == 2
    if knob.type is int:
        with pytest.raises(knobs.KnobError, match="not a whole number"):
            knobs.read(knob, {knob.name: "2.5"})


@pytest.mark.parametrize("knob", NUMBERS, ids=lambda k: k.name)
@pytest.mark.parametrize("text", ["1_0", "\u0661\u0662", "1_0.5"])
def test_a_number_is_written_with_ascii_digits_and_no_underscores(knob, text):
    """A number is read as a spec's YAML reads it: `1_0` (Python's int() reads 10) and another script's digits
    (int() reads '١٢' as 12) are no number."""
    with pytest.raises(knobs.KnobError, match="is not a"):
        knobs.read(knob, {knob.name: text})


@pytest.mark.parametrize("knob", NUMBERS, ids=lambda k: k.name)
def test_each_variable_allows_its_minimum_and_nothing_below(knob):
    """The allowed range is closed at both ends ("from <minimum> to <maximum>"): the minimum itself is
    allowed; the next step below it (1 for a whole number, a hundredth of the minimum or 0.001 otherwise) is not."""
    assert knobs.read(knob, {knob.name: str(knob.minimum)}) == knob.minimum
    below = knob.minimum - 1 if knob.type is int else knob.minimum - max(abs(knob.minimum) / 100, 0.001)
    with pytest.raises(knobs.KnobError, match="is out of range"):
        knobs.read(knob, {knob.name: str(below)})


def test_a_text_variable_is_held_to_its_form():
    knob = knobs.SOURCE_REVISION
    assert [k.name for k in knobs.KNOBS.values() if k.type is str] == [knob.name]
    assert knobs.read(knob, {}) is None and knobs.read(knob, {knob.name: " "}) is None
    for good in ("0123456", "0123456789abcdef" * 2 + "+dirty." + "ab" * 32):
        assert knobs.read(knob, {knob.name: f" {good} "}) == good
    for bad in ("main", "v1.0; rm -rf /", "0123456+dirty", "0123456+dirty.xyz", "0123456\nother"):
        with pytest.raises(knobs.KnobError, match=re.escape(f"`{knob.name}`={bad!r} is not a git revision")):
            knobs.read(knob, {knob.name: bad})


def test_check_all_names_every_bad_variable():
    with pytest.raises(knobs.KnobError) as err:
        knobs.check_all({"MMC_MAX_BUNDLE": "many", "MMC_CONNECT_TIMEOUT_S": "-1", "MMC_REPORT_WORKERS": "2"})
    assert "`MMC_MAX_BUNDLE`='many'" in str(err.value) and "`MMC_CONNECT_TIMEOUT_S`='-1'" in str(err.value)
    assert "MMC_REPORT_WORKERS" not in str(err.value)


def test_a_bad_variable_stops_the_cli_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMC_PROGRESS_INTERVAL_S", "soon")
    assert cli.main(["run", str(REPO / "sweeps" / "smoke.yaml"), "--storage", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: `MMC_PROGRESS_INTERVAL_S`='soon' is not a number; allowed: a number from 0.01 to")
    assert "Traceback" not in err and not (tmp_path / "runs").exists()


def test_a_bad_variable_through_a_real_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "plan", str(REPO / "sweeps" / "smoke.yaml")],
                          cwd=tmp_path, env=clean_env(MMC_MAX_BUNDLE="0x10"), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "error: `MMC_MAX_BUNDLE`='0x10' is not a whole number; allowed: a whole number from 1 to 100000 (unset: 8, "
        "and more (up to 64, about 2 s per trial) for a kind whose tasks take under 0.1 s)"]


def test_a_variable_named_like_a_knob_with_a_typo_is_said_once_and_others_are_left_alone(caplog):
    """`MMC_PROGRES_INTERVAL_S` would be ignored silently: `check_all` warns, naming the variable meant, once
    per process; the harness's and scripts' own `MMC_*` variables (not close to any knob) give nothing."""
    env = {"MMC_PROGRES_INTERVAL_S": "5", "MMC_TEST_EVENTS_DIR": "/x", "MMC_PY": "python3", "MMC_ENV_DIR": "/e",
           "MMC_BENCH_OUT": "/o", "MMC_TASK_RESTARTS": "1"}
    assert knobs.misspelled(env) == ["$MMC_PROGRES_INTERVAL_S is not a variable mmc-sweep reads (it is ignored); "
                                     "did you mean MMC_PROGRESS_INTERVAL_S?"]
    knobs._WARNED.clear()
    with caplog.at_level("WARNING", logger="orchestrator.knobs"):
        knobs.check_all(env)
        knobs.check_all(env)
    assert caplog.text.count("did you mean MMC_PROGRESS_INTERVAL_S?") == 1


def test_the_variables_the_projects_own_scripts_read_are_not_taken_for_typos_of_a_knob():
    """submit.sh's `MMC_SUBMISSION_ID` (README), install.sh's `MMC_REINSTALL` and the test runners' variables are
    variables of their own, not misspelled knobs: no "did you mean" for them, while a real typo still gets one."""
    own = {"MMC_SUBMISSION_ID": "mmc-x", "MMC_REINSTALL": "1", "MMC_FAIL_TASKS": "pretrain", "MMC_SLEEP_TASK_S": "1",
           "MMC_CRASH_MARKER_DIR": "/tmp/x", "MMC_CRASH_WORKER_AT_EPOCH": "1"}
    assert knobs.misspelled(own) == []
    assert knobs.misspelled({**own, "MMC_TASK_RESTART": "1"}) == [
        "$MMC_TASK_RESTART is not a variable mmc-sweep reads (it is ignored); did you mean MMC_TASK_RESTARTS?"]
