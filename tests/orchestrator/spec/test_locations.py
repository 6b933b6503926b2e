"""Where a sweep lives (`orchestrator.spec.locations`): storage URIs must name a location after a known
scheme, a tracking URI a server with a host, a database (SQLite at an absolute path) or Databricks, never a
local directory (MLflow 3 refuses its file store), `data.root` an existing local
directory (`~` is the home directory). The JSON schema's patterns (for editors) refuse and accept the
same values as the checks, wherever a pattern can say the rule."""
from __future__ import annotations

import re

import pytest

from orchestrator.spec.locations import (STORAGE_JSON, TRACKING_JSON, check_root, check_storage,
                                         check_tracking_uri)

SECRET = "wJalrXUtnFEMI-not-a-real-secret"


def storage_problems(value: str) -> list[str]:
    problems: list[str] = []
    check_storage(value, problems)
    return problems


def tracking_problems(value: str) -> list[str]:
    problems: list[str] = []
    check_tracking_uri(value, problems)
    return problems


STORAGE = [   # (value, accepted)
    ("./mmc-runs", True), ("/abs/runs", True), ("s3://bucket", True), ("s3://bucket/runs", True),
    ("gs://b/x", True), ("hdfs://nn/x", True), ("file:///tmp/runs", True), ("file://localhost/tmp/x", True),
    ("file:/tmp/x", True), ("S3://bucket", True),
    # the other schemes pyarrow.fs opens: GCS under both names, HDFS federation, Azure Data Lake (TLS or not)
    ("gcs://bucket/x", True), ("viewfs://nn/x", True), ("abfs://c@acct.dfs.core.windows.net/x", True),
    ("abfss://c@acct.dfs.core.windows.net/x", True),
    ("s3://", False), ("s3:///", False), ("gs://", False), ("file://", False), ("file:///", False),
    ("ftp://host/x", False), ("", False), ("   ", False),
    ("file://otherhost/x", False),               # a file URI names a local path: no other host
    # a local path's URIs (MLflow's sqlite:/// store, file://) end at ? or #: the database would land elsewhere
    ("/tmp/q?x", False), ("./runs#1", False), ("file:///tmp/f?token=x", False), ("file://localhost/a#b", False),
    ("/tmp/x/a%41b", False), ("file:///tmp/50%", False),       # ... and decode %41 as A: MLflow's database elsewhere
    ("s3://bucket/runs?region=x", True),
    # a control character: NUL is in no path (the run's first lstat raised ValueError), a newline or escape
    # breaks every line that prints the directory
    ("/tmp/a\x00b", False), ("/tmp/a\nb", False), ("runs\x1b[31m", False), ("s3://b/x\x7f", False),
    ("/tmp/a\tb", False),
]


@pytest.mark.parametrize("value, accepted", STORAGE)
def test_storage_names_a_location_after_a_known_scheme(value, accepted):
    """docs: `storage` is a local path or a URI (file://, s3://, gs://, hdfs://) naming where runs go:
    a scheme with nothing but slashes after it names no place, blanks name no directory, and a file URI
    is a local path (file://otherhost/ is not this machine's)."""
    assert (storage_problems(value) == []) == accepted, storage_problems(value)
    if value.startswith("/tmp/a") and not value.isprintable():
        assert storage_problems(value) == [f"`storage`: {value!r} has the control character U+{ord(value[6]):04X}; "
                                           "give a local directory or a URI without control characters"]
    if value.lower() in ("s3://", "s3:///", "gs://", "file:///"):
        assert storage_problems(value) == [f"`storage`: {value!r} names no location after the scheme"]


@pytest.mark.parametrize("value, accepted", STORAGE)
def test_the_storage_pattern_of_the_json_schema_agrees_with_the_check(value, accepted):
    assert bool(re.search(STORAGE_JSON["pattern"], value)) == accepted, value


TRACKING = [
    ("http://127.0.0.1:5000", True), ("https://mlflow.example.org", True), ("sqlite:////abs/mlflow.db", True),
    ("postgresql+psycopg2://u@h/db", True), ("mysql://h/db", True), ("databricks", True),
    ("mssql://h/db", True), ("mssql+pyodbc://u@h/db", True), ("databricks-uc", True), ("uc", True),
    ("databricks-uc://profile", True), ("HTTPS://h", True), ("SQLite+pysqlite:////abs/m.db", True),
    ("http://", False), ("https:///path", False), ("ftp://host", False), ("gopher+x://h", False),
    ("http://h /x", False), ("a\tb", False), ("", False),
    # a local directory is MLflow's file store, which MLflow 3 refuses: a path, file://, `//host:5000` and a
    # one-letter scheme (a drive to MLflow as to `scheme`) are all paths
    ("mlruns", False), ("./mlruns", False), ("/abs/mlruns", False), ("file:///tmp/mlruns", False),
    ("FILE:/tmp/mlruns", False), ("//127.0.0.1:5000", False), ("u:x@127.0.0.1:5000", False), ("C:/mlruns", False),
    ("Databricks", False),
    # sqlite: four slashes and a name; three name a file under the working directory, two a database in memory
    ("sqlite:///relative/x.db", False), ("sqlite:///mlflow.db", False), ("sqlite://", False), ("sqlite:", False),
    ("sqlite:////", False),
]


@pytest.mark.parametrize("value, accepted", TRACKING)
def test_a_tracking_uri_is_a_server_with_a_host_a_database_or_databricks(value, accepted):
    """A scheme's `+driver` suffix (postgresql+psycopg2) is the database's driver: the scheme is what
    comes before it. http(s) needs a host; whitespace is never part of a URI. The databases are those
    MLflow's SQLAlchemy store takes (sqlite, postgresql, mysql, mssql); databricks, databricks-uc and uc are
    MLflow's own."""
    assert (tracking_problems(value) == []) == accepted, tracking_problems(value)


@pytest.mark.parametrize("value, accepted", TRACKING)
def test_the_tracking_pattern_of_the_json_schema_agrees_with_the_check(value, accepted):
    assert bool(re.search(TRACKING_JSON["pattern"], value)) == accepted, value


@pytest.mark.parametrize("value", ["/tmp/mlruns", "mlruns", "file:///tmp/mlruns", "//127.0.0.1:5000",
                                   f"u:{SECRET}@127.0.0.1:5000", f"//u:{SECRET}@127.0.0.1:5000",
                                   f"file://u:{SECRET}@localhost/tmp/mlruns"])
def test_a_local_directory_as_tracking_uri_is_refused_as_mlflows_file_store_naming_what_is_allowed(value):
    """MLflow 3 refuses its file store ("maintenance mode"): the run went on with MLflow off and exited 0 with a
    warning. Refused up front, in one line that names the forms MLflow tracks to, credentials hidden."""
    problems = tracking_problems(value)
    assert len(problems) == 1 and SECRET not in problems[0], problems
    assert problems[0].startswith("`mlflow.tracking_uri`: ") and "a local directory to MLflow (its file" in problems[0]
    assert "http://host:5000" in problems[0] and "sqlite:////abs/mlflow.db" in problems[0]


@pytest.mark.parametrize("value", ["sqlite:///relative/x.db", "sqlite:///tmp/mlflow.db", "sqlite://", "sqlite:////"])
def test_a_sqlite_tracking_uri_names_a_database_file_at_an_absolute_path(value):
    """`sqlite:///tmp/mlflow.db` is tmp/mlflow.db under whichever directory the run starts in (it made ./tmp
    there), `sqlite://` a database in memory (gone with the run): refused, naming the four-slash form."""
    problems = tracking_problems(value)
    assert problems == [f"`mlflow.tracking_uri`: {value!r} names no absolute database file (three slashes: a path "
                        "under the working directory, two: a database in memory); give a tracking server "
                        "(http://host:5000), a database URI (sqlite:////abs/mlflow.db, postgresql://host/db) or "
                        "leave it out for the SQLite file in the sweep directory"]


def test_a_root_under_the_home_directory_may_be_written_with_a_tilde(tmp_path, monkeypatch):
    """`~/data` is the home directory's `data` (as a shell reads it), returned absolute."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "data").mkdir()
    problems: list[str] = []
    assert check_root("~/data", problems) == str((tmp_path / "data").resolve()) and problems == []


def test_a_root_as_a_file_uri_is_its_local_directory_and_other_uris_are_refused(tmp_path):
    problems: list[str] = []
    assert check_root(f"file://{tmp_path}", problems) == str(tmp_path.resolve()) and problems == []
    assert check_root("s3://bucket/data", problems) is None
    assert len(problems) == 1 and problems[0].startswith("`data.root`: 's3://bucket/data' is not a local directory")


def test_a_file_uri_of_another_host_is_refused_naming_the_form_to_use():
    """A file URI names a path on this machine: `file://otherhost/x` names one elsewhere, so it is refused
    with the form that works (file:///absolute/path)."""
    problems = storage_problems("file://otherhost/x")
    assert len(problems) == 1 and problems[0].startswith("`storage`: ") and "file:///" in problems[0]


def test_an_http_tracking_uri_needs_a_port_in_range():
    """Ports are 16-bit (0-65535): http://h:70000 names no server; the highest port is allowed."""
    assert tracking_problems("http://h:65535") == []
    problems = tracking_problems("http://h:70000")
    assert len(problems) == 1 and problems[0].startswith("`mlflow.tracking_uri`: 'http://h:70000' names no valid host")


@pytest.mark.parametrize("value", ["http://h:0", "https://u:pw@h:0/x"])
def test_an_http_tracking_uri_with_port_0_is_refused(value):
    """Port 0 is no server's port (a client cannot connect to it): refused, as a port out of range is."""
    problems = tracking_problems(value)
    assert len(problems) == 1 and "names no valid host[:port]" in problems[0] and "pw" not in problems[0]


def test_a_relative_root_is_the_directory_under_the_working_directory_returned_absolute(tmp_path, monkeypatch):
    """sweeps/README.md: "Relative `storage` and `data.root` paths are relative to the working directory";
    check_root returns the directory absolute, so tasks that run elsewhere (another working directory,
    a Ray worker) read the same files."""
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    problems: list[str] = []
    assert check_root("data", problems) == str((tmp_path / "data").resolve()) and problems == []
    assert check_root("./data/../data", problems) == str((tmp_path / "data").resolve()) and problems == []


@pytest.mark.parametrize("value", [7, [], ""])
def test_a_root_that_is_no_text_is_refused_by_name(value):
    problems: list[str] = []
    assert check_root(value, problems) is None
    assert len(problems) == 1 and problems[0].startswith("`data.root`: ") and "not allowed" in problems[0]


def test_a_root_too_long_for_a_path_is_refused_by_name():
    """A name longer than the file system takes (pathlib raises ENAMETOOLONG from is_dir): one problem
    naming `data.root`, the value shortened, not a traceback."""
    problems: list[str] = []
    assert check_root("a" * 20_000, problems) is None
    assert len(problems) == 1 and problems[0].startswith("`data.root`: 'aaaa") and len(problems[0]) < 300


def test_the_download_hint_of_a_missing_root_is_one_line():
    """The `mmc-sweep data download ... --root DIR` hint repeats the root as typed only where it prints as
    one line: a root with a newline is shown escaped, without the hint."""
    problems: list[str] = []
    assert check_root("/nonexistent/a\nb", problems) is None
    assert len(problems) == 1 and "\n" not in problems[0] and "is not an existing directory" in problems[0]
    problems.clear()
    assert check_root("/nonexistent/ab", problems) is None
    assert problems[0].endswith("--root /nonexistent/ab`")


def test_storage_with_a_control_character_is_refused_without_printing_its_credentials():
    (problem,) = storage_problems(f"s3://AKIAEXAMPLE:{SECRET}@bucket/runs\x1b[31m")
    assert problem.startswith("`storage`: ") and "control character U+001B" in problem
    assert SECRET not in problem, problem


@pytest.mark.parametrize("value", ["databricks\n", "http://127.0.0.1:5000\n", "sqlite:////abs/mlflow.db\n"])
def test_a_tracking_uri_ending_in_a_newline_is_refused_by_the_pattern_as_by_the_check(value):
    """The pattern's end is the end of the text: `$` would let a newline before it through."""
    assert tracking_problems(value) and not re.search(TRACKING_JSON["pattern"], value)
