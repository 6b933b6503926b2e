"""`orchestrator.uris`: the scheme of what users write (a Windows drive letter is none), the local path a
storage URI names, and credentials hidden wherever a URI is printed (more cases of `redact`:
tests/test_security.py)."""
from __future__ import annotations

import warnings

import pytest

from orchestrator.uris import UriError, after_scheme, is_remote, local_path_of, redact, redact_warnings, redacting, scheme

SECRET = "wJalrXUtnFEMI-not-a-real-secret"


@pytest.mark.parametrize("value, expected", [
    ("s3://bucket/runs", "s3"), ("S3://Bucket/runs", "s3"), ("GS://b/x", "gs"), ("file:///abs", "file"),
    ("File:/abs", "file"), ("sqlite:////tmp/mlflow.db", "sqlite"), ("postgresql+psycopg2://db/x", "postgresql+psycopg2"),
    ("C:/data/runs", None), ("c:\\data", None), ("/abs/runs", None), ("./runs", None), ("runs", None), (None, None),
])
def test_the_scheme_is_lower_case_and_one_letter_before_a_colon_is_a_drive(value, expected):
    assert scheme(value) == expected


def test_what_follows_the_scheme_or_the_whole_plain_path():
    assert after_scheme("s3://bucket/x") == "//bucket/x" and after_scheme("file:/abs") == "/abs"
    assert after_scheme("C:/data") == "C:/data" and after_scheme("/abs") == "/abs"


@pytest.mark.parametrize("value, remote", [
    ("s3://b/x", True), ("gs://b/x", True), ("http://h:5000", True), ("sqlite:///x.db", True),
    ("file:///abs", False), ("FILE:///abs", False), ("/abs", False), ("./runs", False), ("C:/data", False),
])
def test_only_other_systems_than_the_local_file_system_are_remote(value, remote):
    assert is_remote(value) is remote


@pytest.mark.parametrize("uri, path", [
    ("./runs", "./runs"), ("/abs/runs", "/abs/runs"), ("C:/data", "C:/data"),
    ("file:///abs/runs", "/abs/runs"), ("file://localhost/abs/runs", "/abs/runs"), ("file:/abs/runs", "/abs/runs"),
    ("FILE:///abs/runs", "/abs/runs"), ("s3://bucket/runs", None), ("gs://bucket/runs", None),
])
def test_a_storage_uri_names_its_local_absolute_path_or_none_when_remote(uri, path):
    assert local_path_of(uri) == path


@pytest.mark.parametrize("uri", ["file://host/abs", "file:relative/x", "file://", "file://localhost",
                                 f"file://u:{SECRET}@host/x"])
def test_a_file_uri_naming_no_local_absolute_path_is_refused_redacted(uri):
    with pytest.raises(UriError, match="is not a local file URI; use file:///absolute/path") as raised:
        local_path_of(uri)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize("text, shown", [
    (f"S3://KEY:{SECRET}@bucket/runs", "S3://***@bucket/runs"),
    (f"HTTPS://u:{SECRET}@host/x", "HTTPS://***@host/x"),
    (f"https://h/x?password={SECRET}", "https://h/x?password=***"),
    (f"https://h/x?user=a&pwd={SECRET}", "https://h/x?user=a&pwd=***"),
    (f"https://h/x?api_key={SECRET}&region=eu", "https://h/x?api_key=***&region=eu"),
    (f"https://h/x?a=1;token={SECRET};b=2", "https://h/x?a=1;token=***;b=2"),
    (f"https://h/x?TOKEN={SECRET}", "https://h/x?TOKEN=***"),
    (f"https://h/x?Secret={SECRET}#part", "https://h/x?Secret=***#part"),
    (f"https://h/o?sig={SECRET}&X-Amz-Security-Token={SECRET}", "https://h/o?sig=***&X-Amz-Security-Token=***"),
    ("https://h/x?region=eu&versionId=3", "https://h/x?region=eu&versionId=3"),
])
def test_redact_hides_credentials_whatever_the_case_and_separator(text, shown):
    assert redact(text) == shown and SECRET not in redact(text)


def test_a_redacting_writer_passes_its_other_arguments_on():
    seen = []
    redacting(lambda text, *args, **kwargs: seen.append((text, args, kwargs)))(f"s3://k:{SECRET}@b/x", 1, end="")
    assert seen == [("s3://***@b/x", (1,), {"end": ""})]


def test_redacting_the_warnings_twice_installs_one_display(monkeypatch):
    """The command line may be run many times in one process (the API, tests): a second call must not wrap
    the display again (a chain that grows with every run)."""
    shown = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, *args: shown.append(str(message)))
    redact_warnings()
    once = warnings.showwarning
    redact_warnings()
    assert warnings.showwarning is once
    warnings.showwarning(UserWarning(f"gs://u:{SECRET}@b/x"), UserWarning, "f.py", 1)
    assert shown == ["gs://***@b/x"]


@pytest.mark.parametrize("text, shown", [
    (f"s3://KEY:{SECRET}/with/slashes@bucket/runs", "s3://***@bucket/runs"),
    (f"s3://KEY:p@ss{SECRET}@bucket/runs", "s3://***@bucket/runs"),
    (f"https://h/o?X-Amz-Credential={SECRET}%2F20240101&X-Amz-Date=1", "https://h/o?X-Amz-Credential=***&X-Amz-Date=1"),
])
def test_redact_hides_userinfo_up_to_its_last_at_and_a_presigned_urls_credential(text, shown):
    """`_USERINFO`: up to the last '@' (a secret may hold '/' or '@'); a presigned URL's X-Amz-Credential
    names the access key: hidden like a token."""
    assert redact(text) == shown and SECRET not in redact(text)
