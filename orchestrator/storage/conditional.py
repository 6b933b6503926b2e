"""Conditional writes on an object store: create an object only if absent, replace or delete it only if
it is still the version read. What the sweep lock needs where there is no exclusive create or rename.

S3 (and S3-compatible stores that implement them: MinIO, Ceph RGW) answer `PutObject` with
`If-None-Match: *` or `If-Match: <etag>`, and `DeleteObject` with `If-Match: <etag>`, by 412 Precondition
Failed when the condition does not hold, atomically: of two drivers creating the same lock, exactly one
succeeds. pyarrow has no conditional requests, so they go through boto3 (`pip install 'mmc-sweep[s3]'`),
configured as the storage's pyarrow file system is: its endpoint, region and credentials (from the URI,
else the standard AWS variables and files). `for_storage` is None where that is not possible (another
object store, no boto3): the lock then falls back to write-and-read-back (see orchestrator/storage/lock.py).

A request whose answer was lost and that was tried again (by boto3, or after an outage: every request here
is waited out like the storage's own, orchestrator/storage/retry.py) can fail its condition against its own
first attempt; callers therefore read the object back and recognise their own content (the lock: its token).
"""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow.fs as pafs

from orchestrator.storage.retry import REQUEST_ATTEMPTS, retrying
from orchestrator.uris import redact

CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60


class ConditionalWritesUnsupported(OSError):
    """The store refused a conditional request as not implemented (an older S3-compatible server)."""


@dataclass(frozen=True)
class Version:
    """An object's content and the tag a conditional request names it by (S3: its ETag)."""

    data: bytes
    tag: str


def _client_options(fs: pafs.FileSystem) -> dict:
    """boto3 client arguments equal to the S3 file system's options."""
    options = fs.__reduce__()[1][0]
    endpoint = options.get("endpoint_override") or None
    if endpoint and "://" not in endpoint:
        endpoint = f"{options.get('scheme') or 'https'}://{endpoint}"
    out = {"region_name": options.get("region") or None, "endpoint_url": endpoint}
    if options.get("access_key"):
        out.update(aws_access_key_id=options["access_key"], aws_secret_access_key=options.get("secret_key"),
                   aws_session_token=options.get("session_token") or None)
    return out


class S3Conditional:
    """Conditional requests on the bucket of an S3 `Storage` (paths are the storage's: "bucket/key")."""

    def __init__(self, fs: pafs.FileSystem, where: str = "s3://"):
        import boto3
        from botocore.config import Config
        from botocore.exceptions import ClientError

        self._client_error = ClientError
        self.where = where         # the storage's URI, for messages (redacted when shown)
        config = Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                        retries={"max_attempts": REQUEST_ATTEMPTS, "mode": "standard"})
        self.client = boto3.session.Session().client("s3", config=config, **_client_options(fs))

    @staticmethod
    def _split(path: str) -> tuple[str, str]:
        bucket, _, key = path.partition("/")
        return bucket, key

    def _code(self, exc: Exception) -> str:
        if isinstance(exc, self._client_error):
            return str(exc.response.get("Error", {}).get("Code", ""))
        return ""

    def _conditional(self, call, **kwargs):
        """The call's answer, or None when its condition failed (412; 409 ConditionalRequestConflict)."""
        try:
            return retrying(lambda: call(**kwargs), self.where)
        except self._client_error as exc:
            code = self._code(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":          # a 404 too, but no condition failed: nothing can be written
                raise OSError(f"{code}: the bucket of {redact(self.where)} does not exist") from None
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey") or status in (404, 409, 412):
                return None     # the object is not (or no longer) the version named
            if code in ("NotImplemented", "InvalidArgument") or status == 501:
                raise ConditionalWritesUnsupported(f"the object store does not implement conditional writes "
                                                   f"({code or status})") from None
            raise OSError(f"{code or status}: {exc}") from None

    def read(self, path: str, max_bytes: int) -> Version | None:
        """The object's content (at most `max_bytes` + 1 bytes) and ETag; None when it does not exist."""
        bucket, key = self._split(path)
        try:
            return retrying(lambda: self._read(bucket, key, max_bytes), self.where)
        except self._client_error as exc:
            if self._code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            if self._code(exc) == "InvalidRange":      # an empty object
                head = retrying(lambda: self.client.head_object(Bucket=bucket, Key=key), self.where)
                return Version(b"", head["ETag"])
            raise OSError(f"{self._code(exc)}: {exc}") from None

    def _read(self, bucket: str, key: str, max_bytes: int) -> Version:
        answer = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{max_bytes}")
        return Version(answer["Body"].read(), answer["ETag"])

    def create(self, path: str, data: bytes) -> str | None:
        """Write the object only if none exists; its ETag, or None when one exists."""
        bucket, key = self._split(path)
        answer = self._conditional(self.client.put_object, Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        return None if answer is None else answer["ETag"]

    def replace(self, path: str, data: bytes, tag: str) -> str | None:
        """Overwrite the object only if it is still version `tag`; its new ETag, or None."""
        bucket, key = self._split(path)
        answer = self._conditional(self.client.put_object, Bucket=bucket, Key=key, Body=data, IfMatch=tag)
        return None if answer is None else answer["ETag"]

    def delete(self, path: str, tag: str) -> bool:
        """Delete the object only if it is still version `tag`."""
        bucket, key = self._split(path)
        return self._conditional(self.client.delete_object, Bucket=bucket, Key=key, IfMatch=tag) is not None


def for_storage(storage) -> S3Conditional | None:
    """Conditional writes on `storage`'s object store, or None (local storage: the lock has exclusive
    create and rename there; gs:// and others: not implemented; boto3 missing)."""
    if not getattr(storage, "is_object_store", False) or not isinstance(storage.fs, getattr(pafs, "S3FileSystem", ())):
        return None
    try:
        return S3Conditional(storage.fs, storage.base_uri)
    except ImportError:
        return None
