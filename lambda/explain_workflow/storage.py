"""Object storage behind one small interface: S3 in AWS (or a local S3 API), a directory locally.

Reads are streams; writes go through ``writer()``, which spools to memory then disk and uploads on
success only, so a failed step never leaves a partial object behind and memory stays flat (boto3
uploads large spools as multipart).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

SPOOL_BYTES = 8 * 1024 * 1024
READ_BUFFER = 1 << 16
# botocore's standard mode retries throttling (SlowDown, 503), 5xx and connection errors with backoff, per call.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 6}, connect_timeout=10, read_timeout=60)
STREAM_RETRIES = 4  # a body that breaks mid-read is opened again at the byte it reached, this often
STREAM_BACKOFF_SECONDS = 0.2


class StorageError(RuntimeError):
    """An object is missing or cannot be read."""


class WriteConflict(StorageError):
    """A conditional write refused: the object is no longer the one its writer read (another writer came between)."""


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str = ""
    version_id: str = ""


class Storage(Protocol):
    def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo: ...

    def open(self, bucket: str, key: str, version_id: str | None = None, etag: str | None = None) -> BinaryIO:
        """The object's bytes; with ``etag``, exactly the object of that ETag, else a StorageError saying it changed."""
        ...

    def writer(self, bucket: str, key: str, content_type: str) -> contextlib.AbstractContextManager[BinaryIO]: ...

    def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None: ...

    def read_tagged(self, bucket: str, key: str) -> tuple[bytes, str]:
        """The object's bytes and the ETag of exactly those bytes (StorageError when there is none)."""
        ...

    def put_if(self, bucket: str, key: str, data: bytes, content_type: str, etag: str | None) -> None:
        """Write only while the object is still the one of ``etag`` (None: only while there is none); else
        ``WriteConflict``, writing nothing. The check and the write are one step (no other writer in between)."""
        ...

    def list(self, bucket: str, prefix: str) -> list[str]: ...

    def delete(self, bucket: str, keys: list[str]) -> None: ...


def read_bytes(storage: Storage, bucket: str, key: str) -> bytes:
    with storage.open(bucket, key) as fh:
        return fh.read()


def _transient(exc: BaseException) -> bool:
    """A read that may succeed when tried again: a broken connection, a timeout, throttling or a 5xx."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in ("SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError") or (
            status >= 500
        )
    return isinstance(exc, BotoCoreError | OSError)  # urllib3's protocol errors arrive wrapped as these


def permanent_aws_error(exc: BaseException) -> str | None:
    """What an AWS error that no retry can cure says (a malformed parameter, a 4xx other than throttling), for a
    REJECTED or FAILED answer; None for a transient one."""
    if isinstance(exc, ParamValidationError):
        return f"the request to S3 is malformed: {exc}"
    if isinstance(exc, ClientError) and not _transient(exc):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        return f"S3 answered {status} {error.get('Code', '')}: {error.get('Message', '')}".rstrip(": ")
    return None


def _precondition_failed(exc: ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return exc.response.get("Error", {}).get("Code", "") in ("PreconditionFailed", "412") or status == 412


def _write_conflict(exc: ClientError) -> bool:
    """What S3 answers a conditional PutObject that lost: 412 (the ETag no longer matches, or an object exists for
    If-None-Match), 409 ConditionalRequestConflict (another write to the key was in progress), 404 (If-Match on an
    object deleted since it was read)."""
    code = exc.response.get("Error", {}).get("Code", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return _precondition_failed(exc) or code in ("ConditionalRequestConflict", "NoSuchKey") or status == 409


class _BodyStream(io.RawIOBase):
    """botocore's StreamingBody as a standard raw stream, so io.BufferedReader/TextIOWrapper accept it.

    When the connection breaks mid-body, the rest is fetched again from the byte reached (a ranged GET pinned to
    the object's ETag, so a changed object is an error, never a silent splice), at most ``STREAM_RETRIES`` times.
    """

    def __init__(self, body, reopen=None):
        self.body, self.reopen, self.position, self.retries = body, reopen, 0, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            try:
                data = self.body.read(len(buffer))
                break
            except Exception as exc:
                if self.reopen is None or self.retries >= STREAM_RETRIES or not _transient(exc):
                    raise
                self.retries += 1
                time.sleep(STREAM_BACKOFF_SECONDS * self.retries)
                with contextlib.suppress(Exception):
                    self.body.close()
                self.body = self.reopen(self.position)
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def close(self) -> None:
        self.body.close()
        super().close()


# Multipart uploads in 8 MiB parts, two at a time: memory stays near 16 MiB whatever the object size.
_TRANSFER = TransferConfig(multipart_threshold=SPOOL_BYTES, multipart_chunksize=SPOOL_BYTES, max_concurrency=2)


class S3Storage:
    """S3 through a boto3 client (pass one with ``endpoint_url`` for a local S3 API)."""

    def __init__(self, client):
        self.client = client

    @staticmethod
    def _unreadable(exc, bucket: str, key: str) -> StorageError | None:
        """A StorageError for a missing or forbidden object; None for any other failure (raised as is)."""
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NotFound", "NoSuchVersion", "NoSuchBucket"):
            return StorageError(f"s3://{bucket}/{key} does not exist")
        if code in ("403", "AccessDenied", "Forbidden"):
            # S3 also answers 403 for a missing key when the caller may not list the bucket
            return StorageError(f"s3://{bucket}/{key} cannot be read by this workflow (access denied)")
        return None

    def head(self, bucket, key, version_id=None):
        args = {"Bucket": bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
        try:
            resp = self.client.head_object(**args)
        except self.client.exceptions.ClientError as exc:
            if error := self._unreadable(exc, bucket, key):
                raise error from None
            raise
        return ObjectInfo(resp["ContentLength"], resp.get("ETag", "").strip('"'), resp.get("VersionId") or "")

    def open(self, bucket, key, version_id=None, etag=None):
        args = {"Bucket": bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
        try:
            # IfMatch: S3 answers 412 instead of the bytes of an object overwritten since its ETag was checked
            response = self.client.get_object(**args, **({"IfMatch": f'"{etag}"'} if etag else {}))
        except self.client.exceptions.ClientError as exc:
            if error := self._unreadable(exc, bucket, key):
                raise error from None
            if etag and _precondition_failed(exc):
                raise StorageError(
                    f"s3://{bucket}/{key} changed after it was checked: its ETag is no longer {etag}"
                ) from None
            raise
        etag = response.get("ETag", "")

        def reopen(position: int):
            ranged = {**args, "Range": f"bytes={position}-", **({"IfMatch": etag} if etag else {})}
            return self.client.get_object(**ranged)["Body"]

        return io.BufferedReader(_BodyStream(response["Body"], reopen), READ_BUFFER)

    @contextlib.contextmanager
    def writer(self, bucket, key, content_type):
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            yield spool
            spool.seek(0)
            self.client.upload_fileobj(spool, bucket, key, ExtraArgs={"ContentType": content_type}, Config=_TRANSFER)

    def put(self, bucket, key, data, content_type):
        self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)

    def read_tagged(self, bucket, key):
        try:
            response = self.client.get_object(Bucket=bucket, Key=key)
        except self.client.exceptions.ClientError as exc:
            if error := self._unreadable(exc, bucket, key):
                raise error from None
            raise
        with contextlib.closing(response["Body"]) as body:
            return body.read(), response.get("ETag", "").strip('"')

    def put_if(self, bucket, key, data, content_type, etag):
        # S3's conditional write: it checks the condition and writes the object as one step
        condition = {"IfMatch": f'"{etag}"'} if etag is not None else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type, **condition)
        except self.client.exceptions.ClientError as exc:
            if _write_conflict(exc):
                found = f"is no longer ETag {etag}" if etag is not None else "exists now"
                raise WriteConflict(f"s3://{bucket}/{key} {found}: not written") from None
            raise

    def list(self, bucket, prefix):
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(keys)

    def delete(self, bucket, keys):
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": k} for k in keys[start : start + 1000]]
            answer = self.client.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise StorageError(f"cannot delete s3://{bucket}/{first['Key']}: {first.get('Code')}")


class FileStorage:
    """``root/<bucket>/<key>`` on the local file system; the local mode's default."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, bucket: str, key: str) -> Path:
        path = (self.root / bucket / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise StorageError(f"key {key!r} escapes the storage root")
        return path

    @staticmethod
    def _etag(fh: BinaryIO) -> str:
        digest = hashlib.md5(usedforsecurity=False)  # S3's ETag of a single-part upload: content, not time
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
        return digest.hexdigest()

    def head(self, bucket, key, version_id=None):
        path = self._path(bucket, key)
        if not path.is_file():
            raise StorageError(f"{path} does not exist")
        with path.open("rb") as fh:
            return ObjectInfo(os.fstat(fh.fileno()).st_size, self._etag(fh), "")

    def open(self, bucket, key, version_id=None, etag=None):
        path = self._path(bucket, key)
        if not path.is_file():
            raise StorageError(f"{path} does not exist")
        fh = path.open("rb")
        if etag:
            # the open file is what is read: a file replaced after this check is not read (writers rename, so the
            # bytes under an open descriptor never change)
            found = self._etag(fh)
            if found != etag:
                fh.close()
                raise StorageError(f"{path} changed after it was checked: its ETag is {found}, not {etag}")
            fh.seek(0)
        return fh

    @contextlib.contextmanager
    def writer(self, bucket, key, content_type) -> Iterator[BinaryIO]:
        path = self._path(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".partial-", delete=False) as tmp:
            try:
                yield tmp
                tmp.flush()  # here, not at close: a full disk often shows only when the last buffer is written
            except BaseException:
                with contextlib.suppress(OSError):  # closing flushes again, and fails again on a full disk
                    tmp.close()
                Path(tmp.name).unlink(missing_ok=True)
                raise
        shutil.move(tmp.name, path)  # atomic rename within one directory

    def put(self, bucket, key, data, content_type):
        with self.writer(bucket, key, content_type) as fh:
            fh.write(data)

    def read_tagged(self, bucket, key):
        with self.open(bucket, key) as fh:  # one open file: the bytes and their ETag are of the same object
            data = fh.read()
        return data, hashlib.md5(data, usedforsecurity=False).hexdigest()

    def put_if(self, bucket, key, data, content_type, etag):
        path = self._path(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # the compare-and-swap: check then rename under an exclusive flock of the key's directory, which every
        # conditional writer (any thread, any process) takes; the rename makes the new object appear whole
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(directory, fcntl.LOCK_EX)
            try:
                with path.open("rb") as fh:
                    found = self._etag(fh)
            except FileNotFoundError:
                found = None
            if found != etag:
                raise WriteConflict(
                    f"{path} {'exists now' if etag is None else f'is no longer ETag {etag}'}: not written"
                )
            with self.writer(bucket, key, content_type) as fh:
                fh.write(data)
        finally:
            os.close(directory)  # releases the lock

    def list(self, bucket, prefix):
        base = self.root / bucket
        if not base.is_dir():
            return []
        keys = (p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and not Path(k).name.startswith(".partial-"))

    def delete(self, bucket, keys):
        for key in keys:
            self._path(bucket, key).unlink(missing_ok=True)
