"""A real S3-API server for tests: `moto` in server mode on 127.0.0.1, credentials checked, a bucket per test.

- `S3Server.start(directory)`: `python -m moto.server -H 127.0.0.1 -p 0` (the port is moto's choice, read
  back from its log: nothing picks a port and releases it), in its own session so that stopping it stops
  everything it started. Its request log (one line per HTTP request) is kept for counting requests.
- Credentials are *checked*: the server starts without authentication, an IAM user with an access key
  allowed everything is made, then authentication is switched on (`/moto-api/reset-auth`), so a wrong
  key or secret is refused as by AWS (403). `env` holds what a user sets: `AWS_ACCESS_KEY_ID`,
  `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION` and `AWS_ENDPOINT_URL` (which pyarrow, boto3, MLflow and
  therefore Ray Tune honour).

`s3_server` (module-scoped fixture) and `s3_env` (a fresh bucket per test, the environment set) are what
test modules import; without moto installed they skip with the reason (`pip install -e '.[test]'`).
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT_S = 120
REGION = "us-east-1"
_LISTENING = re.compile(r"Running on (http://127\.0\.0\.1:\d+)")
_REQUEST = re.compile(r'"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3})')
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


@dataclass(frozen=True)
class Request:
    method: str
    path: str       # /bucket/key
    query: str
    status: int

    @property
    def kind(self) -> str:
        """PUT / GET / HEAD / LIST / DELETE / POST (multipart uploads, batch deletes)."""
        if self.method == "GET" and "list-type" in self.query:
            return "LIST"
        return self.method


class S3Server:
    """See the module docstring."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.log_path = directory / "moto.log"
        self.proc: subprocess.Popen | None = None
        self.endpoint = ""
        self.env: dict[str, str] = {}
        self._log = None
        self._buckets = 0

    def start(self) -> "S3Server":
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
                                     stdout=self._log, stderr=subprocess.STDOUT, cwd=self.directory,
                                     start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (found := _LISTENING.search(self.log_path.read_text(errors="replace"))):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("moto server did not start:\n" + self.log_path.read_text()[-3000:])
            time.sleep(0.2)
        self.endpoint = found.group(1)
        try:
            self._enforce_credentials()
        except BaseException:
            self.stop()
            raise
        return self

    def _enforce_credentials(self) -> None:
        import boto3

        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id="setup",
                           aws_secret_access_key="setup")
        iam.create_user(UserName="mmc-test")
        iam.put_user_policy(UserName="mmc-test", PolicyName="all", PolicyDocument=ALLOW_ALL)
        key = iam.create_access_key(UserName="mmc-test")["AccessKey"]
        self.env = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
                    "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": self.endpoint}
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset-auth", data=b"0", method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200

    def client(self, endpoint: str | None = None, **credentials):
        """A boto3 S3 client with the server's credentials (or `credentials`)."""
        import boto3

        return boto3.client("s3", endpoint_url=endpoint or self.endpoint, region_name=REGION,
                            aws_access_key_id=credentials.get("key", self.env["AWS_ACCESS_KEY_ID"]),
                            aws_secret_access_key=credentials.get("secret", self.env["AWS_SECRET_ACCESS_KEY"]))

    def storage_uri(self, bucket: str, prefix: str = "runs", endpoint: str | None = None, **credentials) -> str:
        """The storage URI a MinIO/Ceph user gives: the key, secret (URL-encoded) and endpoint in it, so that
        no AWS variable is needed anywhere (`credentials`: key=, secret= instead of the server's)."""
        key = credentials.get("key", self.env["AWS_ACCESS_KEY_ID"])
        secret = credentials.get("secret", self.env["AWS_SECRET_ACCESS_KEY"])
        host = urllib.parse.urlsplit(endpoint or self.endpoint).netloc
        return (f"s3://{urllib.parse.quote(key, safe='')}:{urllib.parse.quote(secret, safe='')}@{bucket}/{prefix}"
                f"?endpoint_override={host}&scheme=http")

    def new_bucket(self, hint: str = "b") -> str:
        self._buckets += 1
        name = re.sub(r"[^a-z0-9-]", "-", hint.lower())[:30].strip("-")
        name = f"{name or 'b'}-{self._buckets}-{uuid.uuid4().hex[:6]}"
        self.client().create_bucket(Bucket=name)
        return name

    def requests(self, bucket: str | None = None) -> list[Request]:
        """Every request the server has answered so far (of one bucket: its path starts with /bucket)."""
        text = _ANSI.sub("", self.log_path.read_text(errors="replace"))
        found = []
        for match in _REQUEST.finditer(text):
            target = match.group(2)
            path, _, query = target.partition("?")
            if bucket is None or path == f"/{bucket}" or path.startswith(f"/{bucket}/"):
                found.append(Request(match.group(1), path, query, int(match.group(3))))
        return found

    def count(self, bucket: str | None = None, since: int = 0) -> Counter:
        return Counter(r.kind for r in self.requests(bucket)[since:])

    def objects(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """key -> size of every object under `prefix`."""
        found, token = {}, None
        s3 = self.client()
        while True:
            page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, **({"ContinuationToken": token} if token else {}))
            found.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
            token = page.get("NextContinuationToken")
            if not token:
                return found

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)
        if self._log is not None:
            self._log.close()


def moto_problem() -> str | None:
    """Why the S3 server cannot run here (None: it can)."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as exc:
        return f"moto[server] is not installed ({exc}); pip install -e '.[test]'"
    return None


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 for the test module (see the module docstring)."""
    reason = moto_problem()
    if reason:
        pytest.skip(reason)
    server = S3Server(tmp_path_factory.mktemp("s3-server")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch, request):
    """A fresh bucket for the test, and the server's credentials and endpoint in the environment;
    yields (server, bucket)."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    yield s3_server, s3_server.new_bucket(request.node.name)
