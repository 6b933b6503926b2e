"""Conditional writes on S3 (`orchestrator.storage.conditional`), without a server: the boto3 client is replaced
by a small in-memory bucket that answers as S3 documents it (PutObject with `If-None-Match: *` or
`If-Match: <etag>` and DeleteObject with `If-Match`: 412 PreconditionFailed when the condition does not hold;
a GetObject range on an empty object: 416 InvalidRange; a missing key: NoSuchKey). The lock's tests against a
real S3-API server are in test_s3.py (slow)."""
from __future__ import annotations

import hashlib

import pyarrow.fs as pafs
import pytest
from botocore.exceptions import ClientError

from orchestrator.storage import conditional


def client_error(code: str, status: int, operation: str = "PutObject") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       operation)


class Body:
    def __init__(self, data: bytes):
        self.data = data

    def read(self) -> bytes:
        return self.data


class FakeBucket:
    """What an S3 bucket answers to the requests `S3Conditional` makes (the documented semantics only)."""

    def __init__(self):
        self.objects: dict[tuple[str, str], bytes] = {}
        self.calls: list[tuple[str, dict]] = []

    @staticmethod
    def etag(data: bytes) -> str:
        return f'"{hashlib.md5(data).hexdigest()}"'

    def _check(self, where, if_match=None, if_none_match=None):
        current = self.objects.get(where)
        if if_none_match == "*" and current is not None:
            raise client_error("PreconditionFailed", 412)
        if if_match is not None and (current is None or self.etag(current) != if_match):
            raise client_error("PreconditionFailed", 412) if current is not None else client_error("NoSuchKey", 404)

    def put_object(self, Bucket, Key, Body, IfNoneMatch=None, IfMatch=None):  # noqa: N803 - boto3's names
        self.calls.append(("put_object", {"Bucket": Bucket, "Key": Key, "IfNoneMatch": IfNoneMatch, "IfMatch": IfMatch}))
        self._check((Bucket, Key), IfMatch, IfNoneMatch)
        self.objects[Bucket, Key] = bytes(Body)
        return {"ETag": self.etag(bytes(Body))}

    def delete_object(self, Bucket, Key, IfMatch=None):  # noqa: N803
        self.calls.append(("delete_object", {"Bucket": Bucket, "Key": Key, "IfMatch": IfMatch}))
        self._check((Bucket, Key), IfMatch)
        self.objects.pop((Bucket, Key), None)
        return {}

    def get_object(self, Bucket, Key, Range):  # noqa: N803
        self.calls.append(("get_object", {"Bucket": Bucket, "Key": Key, "Range": Range}))
        if (Bucket, Key) not in self.objects:
            raise client_error("NoSuchKey", 404, "GetObject")
        data = self.objects[Bucket, Key]
        first, last = (int(x) for x in Range.removeprefix("bytes=").split("-"))
        if first >= len(data):
            raise client_error("InvalidRange", 416, "GetObject")
        return {"Body": Body(data[first:last + 1]), "ETag": self.etag(data)}

    def head_object(self, Bucket, Key):  # noqa: N803
        self.calls.append(("head_object", {"Bucket": Bucket, "Key": Key}))
        return {"ETag": self.etag(self.objects[Bucket, Key])}


def s3_filesystem(**options) -> pafs.FileSystem:
    return pafs.S3FileSystem(**{"region": "us-east-1", **options})


@pytest.fixture
def bucket() -> FakeBucket:
    return FakeBucket()


@pytest.fixture
def store(bucket) -> conditional.S3Conditional:
    """An `S3Conditional` whose client is the fake bucket (made without `__init__`: a boto3 client costs ~0.5 s)."""
    s3 = conditional.S3Conditional.__new__(conditional.S3Conditional)
    s3._client_error, s3.where, s3.client = ClientError, "s3://bkt/runs", bucket
    return s3


def test_the_boto3_client_reaches_the_endpoint_region_and_credentials_of_the_storage():
    """The conditional requests go where the storage's pyarrow file system goes: its endpoint (with the URI's
    scheme, https unless told), its region, its key, secret and session token, each in its own argument."""
    fs = s3_filesystem(access_key="AKID", secret_key="S3CRET", session_token="TOKEN", region="eu-west-3",
                       endpoint_override="127.0.0.1:9000", scheme="http")
    assert conditional._client_options(fs) == {
        "region_name": "eu-west-3", "endpoint_url": "http://127.0.0.1:9000", "aws_access_key_id": "AKID",
        "aws_secret_access_key": "S3CRET", "aws_session_token": "TOKEN"}
    assert conditional._client_options(s3_filesystem(endpoint_override="http://minio:9000"))["endpoint_url"] == \
        "http://minio:9000"                                  # a scheme already in the endpoint is kept as it is
    plain = conditional._client_options(s3_filesystem())
    assert plain == {"region_name": "us-east-1", "endpoint_url": None}   # AWS itself, the SDK's own credentials


def test_of_two_creations_of_the_same_object_exactly_one_succeeds(store, bucket):
    """`create` is PutObject with `If-None-Match: *`: the second finds the object and gets None (412)."""
    tag = store.create("bkt/runs/s/run.lock", b"first")
    assert tag == FakeBucket.etag(b"first")
    assert store.create("bkt/runs/s/run.lock", b"second") is None
    assert bucket.objects["bkt", "runs/s/run.lock"] == b"first"
    assert bucket.calls[0] == ("put_object", {"Bucket": "bkt", "Key": "runs/s/run.lock", "IfNoneMatch": "*",
                                              "IfMatch": None})


def test_replace_and_delete_act_only_on_the_version_read(store, bucket):
    """`replace` and `delete` name the version by its ETag (`If-Match`): a stale one changes nothing."""
    path = "bkt/runs/s/run.lock"
    first = store.create(path, b"first")
    second = store.replace(path, b"second", first)
    assert second == FakeBucket.etag(b"second") and bucket.objects["bkt", "runs/s/run.lock"] == b"second"
    assert store.replace(path, b"third", first) is None                 # `first` is no longer there
    assert store.delete(path, first) is False
    assert bucket.objects["bkt", "runs/s/run.lock"] == b"second"
    assert store.delete(path, second) is True and ("bkt", "runs/s/run.lock") not in bucket.objects
    assert store.delete(path, second) is False                          # gone: nothing of that version to delete


def test_a_read_asks_one_byte_more_than_the_limit_and_knows_missing_and_empty_objects(store, bucket):
    """`read` returns at most `max_bytes` + 1 bytes (so that a caller sees a too large object), None for a
    missing one, and an empty object (whose byte range S3 refuses: InvalidRange) as b"" with its ETag."""
    bucket.objects["bkt", "runs/s/big"] = b"x" * 100
    bucket.objects["bkt", "runs/s/empty"] = b""
    big = store.read("bkt/runs/s/big", 10)
    assert big.data == b"x" * 11 and big.tag == FakeBucket.etag(b"x" * 100)
    assert bucket.calls[-1][1]["Range"] == "bytes=0-10"
    assert store.read("bkt/runs/s/missing", 10) is None
    assert store.read("bkt/runs/s/empty", 10) == conditional.Version(b"", FakeBucket.etag(b""))


def test_a_read_takes_every_not_found_answer_for_a_missing_object(store, bucket):
    """S3-compatible stores say "not found" as NoSuchKey, NotFound or a bare 404: none of them is an error."""
    for code in ("404", "NotFound"):
        def get_object(code=code, **kwargs):
            raise client_error(code, 404, "GetObject")

        bucket.get_object = get_object
        assert store.read("bkt/runs/s/lock", 10) is None


@pytest.mark.parametrize(("code", "status"), [("PreconditionFailed", 412), ("ConditionalRequestConflict", 409)])
def test_a_condition_that_fails_or_conflicts_is_none_not_an_error(store, bucket, code, status):
    """S3 answers a failed condition with 412, and a conditional write racing another on the same key with
    409 ConditionalRequestConflict: either way this write did not happen (None, False)."""
    def refuse(**kwargs):
        raise client_error(code, status)

    bucket.put_object = bucket.delete_object = refuse
    assert store.create("bkt/runs/s/lock", b"x") is None
    assert store.replace("bkt/runs/s/lock", b"x", '"etag"') is None
    assert store.delete("bkt/runs/s/lock", '"etag"') is False


@pytest.mark.parametrize(("code", "status"), [("NotImplemented", 501), ("InvalidArgument", 400), ("", 501)])
def test_a_store_without_conditional_writes_says_so(store, bucket, code, status):
    """An older S3-compatible server refuses the header as not implemented: `ConditionalWritesUnsupported`
    (the lock then falls back to write-and-read-back), not a bare OSError."""
    def refuse(**kwargs):
        raise client_error(code, status)

    bucket.put_object = refuse
    with pytest.raises(conditional.ConditionalWritesUnsupported):
        store.create("bkt/runs/s/lock", b"x")


def test_a_bucket_that_does_not_exist_is_an_error_not_an_object_that_exists(store, bucket):
    """S3 answers a write into a missing bucket with 404 NoSuchBucket: no condition failed, so the lock
    must not read it as "another driver's lock exists" but as the error it is, naming the storage."""
    def missing(**kwargs):
        raise client_error("NoSuchBucket", 404)

    bucket.put_object = bucket.delete_object = missing
    with pytest.raises(OSError, match=r"NoSuchBucket: the bucket of s3://bkt/runs does not exist"):
        store.create("bkt/runs/s/lock", b"x")
    with pytest.raises(OSError, match="NoSuchBucket"):
        store.delete("bkt/runs/s/lock", '"etag"')


def test_paths_split_into_bucket_and_key_at_the_first_slash():
    assert conditional.S3Conditional._split("bkt/runs/s/run.lock") == ("bkt", "runs/s/run.lock")


@pytest.mark.parametrize(("code", "status"), [("AccessDenied", 403), ("SignatureDoesNotMatch", 403)])
def test_a_refusal_that_is_no_failed_condition_is_an_error_naming_it(store, bucket, code, status):
    """Access denied is an answer about this driver, not "another driver holds the lock": an OSError with
    the code, from a conditional write and from a read alike (never None, never False)."""
    def refuse(**kwargs):
        raise client_error(code, status, "GetObject")

    bucket.put_object = bucket.delete_object = bucket.get_object = refuse
    for act in (lambda: store.create("bkt/runs/s/lock", b"x"), lambda: store.replace("bkt/runs/s/lock", b"x", '"e"'),
                lambda: store.delete("bkt/runs/s/lock", '"e"'), lambda: store.read("bkt/runs/s/lock", 10)):
        with pytest.raises(OSError, match=code):
            act()


def test_a_bare_404_to_a_conditional_write_is_an_object_no_longer_there(store, bucket):
    """A store that answers `If-Match` on a deleted object with a 404 and no code: the version named is not
    there (None, False), as with NoSuchKey."""
    def gone(**kwargs):
        raise client_error("", 404)

    bucket.put_object = bucket.delete_object = gone
    assert store.replace("bkt/runs/s/lock", b"x", '"etag"') is None
    assert store.delete("bkt/runs/s/lock", '"etag"') is False


@pytest.mark.parametrize("code", ["", "OperationAborted"])
def test_a_bare_409_to_a_conditional_write_is_a_conflict_not_an_error(store, bucket, code):
    """A store that answers a write racing another on the same key with a 409 of another code (or none): this
    write did not happen (None, False), as with ConditionalRequestConflict, never an error of the driver."""
    def conflict(**kwargs):
        raise client_error(code, 409)

    bucket.put_object = bucket.delete_object = conflict
    assert store.create("bkt/runs/s/lock", b"x") is None
    assert store.replace("bkt/runs/s/lock", b"x", '"etag"') is None
    assert store.delete("bkt/runs/s/lock", '"etag"') is False


def test_conditional_requests_and_reads_wait_out_a_store_that_cannot_be_reached(store, bucket, monkeypatch):
    """Module docstring: every request here is waited out like the storage's own (orchestrator/storage/retry.py)."""
    from orchestrator.storage import retry

    monkeypatch.setattr(retry, "FIRST_WAIT_S", 0.001)
    monkeypatch.setattr(retry._Outage, "warned", False)
    for name in ("put_object", "get_object"):
        real, failed = getattr(bucket, name), []

        def flaky(real=real, failed=failed, **kwargs):
            if not failed:
                failed.append(1)
                raise OSError("[Errno 111] Connection refused")
            return real(**kwargs)

        setattr(bucket, name, flaky)
    assert store.create("bkt/runs/s/lock", b"x") == FakeBucket.etag(b"x")
    assert store.read("bkt/runs/s/lock", 10).data == b"x"


def test_empty_options_of_the_file_system_are_left_to_the_sdk():
    """pyarrow holds an unset region and session token as '': boto3 gets None (its own default chain), never
    an empty region or an empty token header."""
    options = conditional._client_options(s3_filesystem(region="", access_key="AKID", secret_key="S3CRET"))
    assert options == {"region_name": None, "endpoint_url": None, "aws_access_key_id": "AKID",
                       "aws_secret_access_key": "S3CRET", "aws_session_token": None}


def test_the_boto3_client_waits_and_retries_as_documented(monkeypatch):
    """The client connects within CONNECT_TIMEOUT_S, waits READ_TIMEOUT_S for an answer, and tries a request
    REQUEST_ATTEMPTS times in the SDK's standard mode (orchestrator/storage/retry.py: longer outages are waited
    out there); it is made for the storage's endpoint."""
    import boto3

    from orchestrator.storage.retry import REQUEST_ATTEMPTS

    made = {}

    class Session:
        def client(self, service, **kwargs):
            made.update(kwargs, service=service)
            return "client"

    monkeypatch.setattr(boto3.session, "Session", Session)
    s3 = conditional.S3Conditional(s3_filesystem(endpoint_override="127.0.0.1:9000", scheme="http"), "s3://bkt/runs")
    config = made["config"]
    assert s3.client == "client" and made["service"] == "s3" and made["endpoint_url"] == "http://127.0.0.1:9000"
    assert (config.connect_timeout, config.read_timeout) == (conditional.CONNECT_TIMEOUT_S, conditional.READ_TIMEOUT_S)
    assert config.retries == {"max_attempts": REQUEST_ATTEMPTS, "mode": "standard"}


def test_only_an_s3_object_store_gets_conditional_writes():
    """Local storage and other object stores (gs://) have none here: None, and no boto3 client is made."""
    import types

    from orchestrator.storage.layout import Storage

    assert conditional.for_storage(Storage("mock:///bucket/runs")) is None
    assert conditional.for_storage(types.SimpleNamespace(is_object_store=True, fs=pafs.LocalFileSystem())) is None
    assert conditional.for_storage(types.SimpleNamespace(is_object_store=False, fs=s3_filesystem())) is None
