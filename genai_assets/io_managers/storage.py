"""Where stored asset values live: a local folder or an S3 bucket under a prefix.

Both backends implement the same small interface (:class:`ObjectStore`), so the
format-aware IO manager has a single implementation and behaves identically on a
laptop and in production. Keys are ``/``-separated relative paths; the backend
maps them to files under a root folder or to objects under a bucket prefix.

No dagster import: this module is tested directly.
"""

import abc
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from typing_extensions import override

TEMP_PREFIX = ".tmp-"


class BucketNotFoundError(RuntimeError):
    """The configured S3 bucket does not exist and creating it was not requested."""


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid storage key {key!r}: expected a relative path like 'a/b.json'")
    return key


class ObjectStore(abc.ABC):
    """A flat namespace of byte objects addressed by ``/``-separated keys."""

    @abc.abstractmethod
    def uri(self, key: str) -> str:
        """Where ``key`` lives, for people: a file path or an ``s3://`` URI."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``."""

    @abc.abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The object at ``key``; FileNotFoundError naming its URI when there is none."""

    @abc.abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key``; readers see the old or the new object, never a part."""

    @abc.abstractmethod
    def upload_file(self, key: str, path: Path) -> None:
        """Store the contents of the local file ``path`` at ``key`` (atomically)."""

    @abc.abstractmethod
    def download_file(self, key: str, path: Path) -> None:
        """Write the object at ``key`` to the local file ``path``."""

    @abc.abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Every key that starts with ``prefix``, sorted."""

    @abc.abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Remove the objects at ``keys`` (missing ones are ignored)."""

    def local_path(self, key: str) -> Path | None:
        """The local file or folder behind ``key`` when the backend is local, else None."""
        return None


class LocalObjectStore(ObjectStore):
    """Objects as files under a root folder; writes go to a temporary file then os.replace."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    @override
    def uri(self, key: str) -> str:
        return str(self._path(key))

    @override
    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    @override
    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    @override
    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no stored object at {path}")
        return path.read_bytes()

    def _atomic_write(self, key: str, write) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    @override
    def write_bytes(self, key: str, data: bytes) -> None:
        self._atomic_write(key, lambda handle: handle.write(data))

    @override
    def upload_file(self, key: str, path: Path) -> None:
        def copy(handle) -> None:
            with open(path, "rb") as source:
                shutil.copyfileobj(source, handle, length=1024 * 1024)

        self._atomic_write(key, copy)

    @override
    def download_file(self, key: str, path: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise FileNotFoundError(f"no stored object at {source}")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)

    @override
    def list_keys(self, prefix: str) -> list[str]:
        # Walk only the folder the prefix points into, not the whole root.
        folder = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        if not folder.is_dir():
            return []
        keys = (
            path.relative_to(self.root).as_posix()
            for path in folder.rglob("*")
            if path.is_file() and not path.name.startswith(TEMP_PREFIX)
        )
        return sorted(key for key in keys if key.startswith(prefix))

    @override
    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class S3ObjectStore(ObjectStore):
    """Objects in an S3 (or S3-compatible) bucket under a key prefix.

    ``client`` is a boto3 S3 client (e.g. from dagster-aws ``S3Resource.get_client()``).
    The bucket is checked once, on first use: a missing bucket raises
    :class:`BucketNotFoundError` naming it, unless ``create_bucket`` is set.
    """

    def __init__(
        self, client: Any, bucket: str, prefix: str = "", create_bucket: bool = False
    ) -> None:
        if not bucket:
            raise ValueError("S3ObjectStore needs a bucket name")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.create_bucket = create_bucket
        self._bucket_checked = False

    def _full_key(self, key: str) -> str:
        key = _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative_key(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def ensure_bucket(self) -> None:
        """Check (once) that the bucket exists; create it when ``create_bucket`` is set."""
        if self._bucket_checked:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            code = _error_code(error)
            if code in ("404", "NoSuchBucket", "NotFound"):
                if not self.create_bucket:
                    raise BucketNotFoundError(
                        f"S3 bucket {self.bucket!r} does not exist"
                        f" (endpoint {self.client.meta.endpoint_url}). Create it, or set"
                        " create_bucket=True (GENAI_ASSETS_S3_CREATE_BUCKET=true) to have"
                        " the IO manager create it."
                    ) from error
                self._create_bucket()
            elif code in ("403", "AccessDenied", "Forbidden"):
                raise PermissionError(
                    f"access to S3 bucket {self.bucket!r} was denied: check the credentials"
                    " (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the pod's role)"
                ) from error
            else:
                raise
        self._bucket_checked = True

    def _create_bucket(self) -> None:
        region = self.client.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as error:
            # Another step may have created it between the check and this call.
            if _error_code(error) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    @override
    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full_key(key)}"

    @override
    def exists(self, key: str) -> bool:
        self.ensure_bucket()
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._full_key(key))
        except ClientError as error:
            if _error_code(error) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    @override
    def read_bytes(self, key: str) -> bytes:
        self.ensure_bucket()
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._full_key(key))
        except ClientError as error:
            if _error_code(error) in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(f"no stored object at {self.uri(key)}") from error
            raise
        return response["Body"].read()

    @override
    def write_bytes(self, key: str, data: bytes) -> None:
        # A PUT is atomic in S3: readers see the old or the new object.
        self.ensure_bucket()
        self.client.put_object(Bucket=self.bucket, Key=self._full_key(key), Body=data)

    @override
    def upload_file(self, key: str, path: Path) -> None:
        # Multipart for large files; the object appears only when the upload completes.
        self.ensure_bucket()
        self.client.upload_file(str(path), self.bucket, self._full_key(key))

    @override
    def download_file(self, key: str, path: Path) -> None:
        self.ensure_bucket()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.download_file(self.bucket, self._full_key(key), str(path))
        except ClientError as error:
            if _error_code(error) in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(f"no stored object at {self.uri(key)}") from error
            raise

    def _iter_full_keys(self, full_prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    @override
    def list_keys(self, prefix: str) -> list[str]:
        self.ensure_bucket()
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        return sorted(self._relative_key(key) for key in self._iter_full_keys(full_prefix))

    @override
    def delete(self, keys: Iterable[str]) -> None:
        self.ensure_bucket()
        full_keys = [self._full_key(key) for key in keys]
        for start in range(0, len(full_keys), 1000):  # DeleteObjects takes 1000 keys at most
            batch = full_keys[start : start + 1000]
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
            errors = response.get("Errors", [])
            if errors:
                raise RuntimeError(
                    f"could not delete {len(errors)} object(s) from s3://{self.bucket}:"
                    f" {errors[0].get('Key')}: {errors[0].get('Message')}"
                )
