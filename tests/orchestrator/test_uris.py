"""`orchestrator.uris`: the scheme of what users write (a Windows drive letter is none), the local path a
storage URI names, and credentials hidden wherever a URI is printed (more cases of `redact`:
tests/test_security.py)."""
from __future__ import annotations

import warnings

import pytest

from orchestrator import uris
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


@pytest.mark.parametrize("text, shown", [
    (f"s3:/AK:{SECRET}@bucket/x", "s3:/***@bucket/x"),
    (f"s3:AK:{SECRET}@bucket/x", "***@bucket/x"),
    (f"gs:/u:{SECRET}@bucket/x", "gs:/***@bucket/x"),
    (f"http:/u:{SECRET}@127.0.0.1:1", "http:/***@127.0.0.1:1"),
    (f"bob:{SECRET}@127.0.0.1:5000", "***@127.0.0.1:5000"),
    (f"u:{SECRET}@127.0.0.1:5000", "***@127.0.0.1:5000"),
    (f"//u:{SECRET}@127.0.0.1:5000", "//***@127.0.0.1:5000"),
    (f"--address u:{SECRET}@127.0.0.1:1", "--address ***@127.0.0.1:1"),
    (f"--tracking-uri=u:{SECRET}@h:5000", "--tracking-uri=***@h:5000"),
    (f"$RAY_ADDRESS 'garbage:{SECRET}@' is not host:port", "$RAY_ADDRESS '***@' is not host:port"),
    (f"storage: `u:{SECRET}@h`", "storage: `***@h`"),
    (f"s3:AK:ab/{SECRET}@bucket/x", "***@bucket/x"),                   # a secret with '/'
    (f"u:p@{SECRET}@127.0.0.1", "***@127.0.0.1"),                      # ... or '@': up to the last @
    (f"_s3://k:{SECRET}@b/x", "_s3://***@b/x"),                         # no word boundary before the scheme
])
def test_redact_hides_a_user_and_password_without_a_well_formed_scheme_before_them(text, shown):
    """`scheme://` misspelt (one slash, none) or left out: the `user:password@` is hidden all the same."""
    assert redact(text) == shown and SECRET not in redact(text)


@pytest.mark.parametrize("text, shown", [
    (f"at 12:30:01 bob@example.com gave u:{SECRET}@h:5000 (host:5000)",
     "at 12:30:01 bob@example.com gave ***@h:5000 (host:5000)"),
    (f"{{'pair': 'cue~cue:spawn@2', 'uri': 'u:{SECRET}@h'}} <Task at 0x7f3a>",
     "{'pair': 'cue~cue:spawn@2', 'uri': '***@h'} <Task at 0x7f3a>"),
    (f"X~X:spawn@0, nocue~nocue:spawn@K and s3:AK:{SECRET}@b/cue~cue:spawn@2",
     "X~X:spawn@0, nocue~nocue:spawn@K and ***@b/cue~cue:spawn@2"),
    (f"git@github.com:org/repo acc@0.5 Bob <bob@x.org> s3:/k:{SECRET}@b",
     "git@github.com:org/repo acc@0.5 Bob <bob@x.org> s3:/***@b"),
    (f"# override:storage=s3:/k:{SECRET}@b, u:{SECRET}@h/s3://k@x", "# override:storage=s3:/***@b, ***@h/s3://***@x"),
    # a pair type with an epoch its design does not take: the spec's error must show it as written
    ("`paths.pairs[0]`: 'cue~nocue:same-init@3': only a spawn design takes an epoch",
     "`paths.pairs[0]`: 'cue~nocue:same-init@3': only a spawn design takes an epoch"),
    (f"cue~cue:resubset@2 u:{SECRET}@cue~cue:self@h", "cue~cue:resubset@2 ***@cue~cue:self@h"),
])
def test_redact_hides_a_bare_userinfo_and_leaves_the_rest_of_the_line_as_it_was(text, shown):
    """E-mail addresses (no colon), host:port and times (no @), Python reprs and pair types (`cue~cue:spawn@2`,
    orchestrator.vocab) are no credentials: only the userinfo beside them is hidden."""
    assert redact(text) == shown


def test_redact_takes_time_linear_in_the_line_even_without_blanks():
    """Every log line goes through `redact`: a 400,000-character word of colons and separators with an @ far
    away (a regex that restarts at every separator takes minutes) is redacted in well under a second."""
    import time

    for text in ("x:1," * 100_000 + f" u:{SECRET}@h", "a:b/" * 100_000 + f"c:{SECRET}@h",
                 "s3://@" * 70_000 + f"u:{SECRET}@h", "a.b-" * 100_000 + f"u:{SECRET}@h"):
        began = time.perf_counter()
        assert SECRET not in redact(text)
        assert time.perf_counter() - began < 1.0


@pytest.mark.parametrize("password", [f"{SECRET}'x", f"{SECRET}\"x", f"{SECRET}<x>", f"x'{SECRET}"])
def test_redact_hides_a_password_that_holds_a_quote_or_an_angle_bracket(password):
    """`'` is a legal character of a URI's userinfo (and `"<>` get typed into one): a quote ends no word, so the
    whole password is hidden, in a message that quotes the URI in either quotes too."""
    for text in (f"s3://AKIA:{password}@bucket/x", f"storage={'s3://AKIA:' + password + '@bucket/x'!r} is refused",
                 f"tracking at http://bob:{password}@127.0.0.1:9: no answer"):
        assert SECRET not in redact(text) and "***@" in redact(text), redact(text)


def test_a_uri_known_whole_has_its_userinfo_hidden_whatever_it_holds(monkeypatch):
    """A value known whole (a spec's string, a command-line argument): its userinfo, up to the last @, is hidden
    in every later message, also where a blank in the password cuts the word a message shows it in."""
    monkeypatch.setattr(uris, "_SECRETS", ())
    uri = f"s3://AKIA:a b {SECRET}@bucket/x"
    assert "a b" in redact(f"storage {uri} is refused")                  # before: words cut at the blank
    uris.remember_secrets(uri)
    for text in (f"storage {uri} is refused", f"{uri!r}", f"the password a b {SECRET} alone"):
        assert SECRET not in redact(text) and "a b" not in redact(text), redact(text)
    uris.remember_secrets("bob@example.com and git@host:org/repo")      # no password: nothing remembered
    uris.remember_arguments(["plan", "spec.yaml", f"--address=ray://u:{SECRET[::-1]}x@h:1"])
    assert redact(f"{SECRET[::-1]}x") == "***" and redact("bob@example.com") == "bob@example.com"


def test_query_secrets_are_hidden_by_more_names_in_time_linear_in_the_line():
    """`?pw=`, `?pass=`, `?auth=` are secrets as `?password=` is; a value of 40,000-60,000 characters of such names
    without `=` (a spec's storage) is redacted in well under a second (a pattern that backtracks over the whole
    name takes seconds here, and minutes at 300,000)."""
    import time

    for name in ("pw", "pass", "auth", "access_token", "passphrase"):
        assert redact(f"https://h/x?{name}={SECRET}&a=1") == f"https://h/x?{name}=***&a=1"
    for text in ("./?" + "token" * 10_000, "./?" + "pwd" * 20_000, "?" + "tokenpass" * 5_000):
        began = time.perf_counter()
        redact(text)
        assert time.perf_counter() - began < 1.0


def test_a_remembered_password_of_six_characters_is_hidden_alone(monkeypatch):
    """`remember_secrets`: the password alone too "where it is long enough not to be an ordinary word": six
    characters are (a shorter one is not remembered alone)."""
    monkeypatch.setattr(uris, "_SECRETS", ())
    uris.remember_secrets("s3://AKIA:k3y!x9@bucket/x")
    uris.remember_secrets("s3://AKIA:k3y!x@bucket/x")
    assert redact("the password k3y!x9 alone") == "the password *** alone"
    assert redact("the password k3y!x alone") == "the password k3y!x alone"


def test_a_remembered_userinfo_is_hidden_whole_before_its_password(monkeypatch):
    """Longest first: the userinfo `user:password` is replaced whole, not its password first (which would leave
    the user name, an access key id, beside the `***`)."""
    monkeypatch.setattr(uris, "_SECRETS", ())
    uris.remember_secrets(f"s3://AKIAEXAMPLE:{SECRET}@bucket/x")
    assert redact(f"userinfo AKIAEXAMPLE:{SECRET} given") == "userinfo *** given"


def test_the_tracking_uri_of_the_environment_is_remembered_with_the_arguments(monkeypatch):
    """`remember_arguments`: the URIs of its environment too, `MLFLOW_TRACKING_URI` as `RAY_ADDRESS`."""
    monkeypatch.setattr(uris, "_SECRETS", ())
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://bob:a b {SECRET}@h:5000")
    uris.remember_arguments(["status", "runs/x"])
    assert SECRET not in redact(f"tracking a b {SECRET} refused")


def test_a_redacted_query_secret_before_a_fragment_is_known_as_redacted():
    """`redacted_credentials`: `?token=***` is redacted whether the URI goes on with `&`, `;`, `#` or ends."""
    assert uris.redacted_credentials("http://h:5000/?token=***#/experiments")
    assert uris.redacted_credentials("s3://b/x?token=***") and not uris.redacted_credentials("s3://b/x?token=abc#y")


def test_a_short_password_is_remembered_in_its_userinfo(monkeypatch):
    """A password too short to be hidden alone is still hidden within its userinfo, known whole (a blank in it
    cuts the word a message shows it in)."""
    monkeypatch.setattr(uris, "_SECRETS", ())
    uris.remember_secrets("s3://AKIA:a b@bucket/x")
    assert redact("storage s3://AKIA:a b@bucket/x is refused") == "storage s3://***@bucket/x is refused"


def test_a_user_name_without_a_password_is_not_remembered(monkeypatch):
    """No password, nothing remembered (the docstring's "bob@example.com" case, with a scheme): a user name alone
    is no secret, and hiding it would hide that word in every later message."""
    monkeypatch.setattr(uris, "_SECRETS", ())
    uris.remember_secrets("ssh://git@github.com/org/repo")
    assert redact("the git revision of the checkout") == "the git revision of the checkout"


def test_a_remembered_password_with_a_colon_is_hidden_whole(monkeypatch):
    """The password is everything after the user name's colon: one with a colon of its own is hidden whole."""
    monkeypatch.setattr(uris, "_SECRETS", ())
    uris.remember_secrets("s3://AKIA:pa:ssword-42@bucket/x")
    assert redact("the password pa:ssword-42 alone") == "the password *** alone"


def test_a_remembered_password_with_an_at_is_known_up_to_the_last_at(monkeypatch):
    """The userinfo of a URI known whole runs to its last @ (a password may hold one): `p@ss w0rd-long` is hidden
    alone, though a blank cuts it and its first part has no colon."""
    monkeypatch.setattr(uris, "_SECRETS", ())
    uris.remember_secrets("s3://AKIA:p@ss w0rd-long@bucket/x")
    assert redact("the password p@ss w0rd-long alone") == "the password *** alone"


def test_a_uri_whose_userinfo_was_redacted_is_known_as_redacted():
    """`redacted_credentials`: a resolved spec given back with `s3://***@bucket` (what `redact` leaves of a key
    and secret) would send `***` as the user name: it is recognised, as a query's `token=***` is; a URI with
    its credentials, or none, is not."""
    assert uris.redacted_credentials("s3://***@bucket/runs")
    assert uris.redacted_credentials(uris.redact("s3://AKID:hunter2secret@bucket/runs"))
    assert not uris.redacted_credentials("s3://AKID:hunter2secret@bucket/runs")
    assert not uris.redacted_credentials("s3://bucket/runs") and not uris.redacted_credentials("bob@example.com")
