"""Where batch inference input files come from: a local folder or an S3 prefix.

Every ``*.jsonl`` file directly in the folder (or directly under the prefix)
is one input file, named by its file name; that name is the partition key of
``batch_inference_results``. A file's ``version`` (size and modification time,
or the S3 ETag) tells the sensor when a known file has changed.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field

SUFFIX = ".jsonl"


@dataclass(frozen=True)
class PromptFile:
    """One input file: its name (the partition key) and a version that changes with it."""

    key: str
    version: str


def _split_s3(location: str) -> tuple[str, str]:
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"S3 location {location!r} has no bucket; expected s3://bucket/prefix")
    return bucket, (prefix.rstrip("/") + "/") if prefix.strip("/") else ""


class PromptSourceResource(dg.ConfigurableResource):
    """A folder or S3 prefix of JSONL request files for batch inference."""

    location: str = Field(
        description="A local folder, or s3://bucket/prefix for files in S3 (needs `s3`)."
    )
    s3: S3Resource | None = Field(
        default=None, description="The S3 client settings, used when location is s3://..."
    )

    @property
    def is_s3(self) -> bool:
        """Whether the files live in S3."""
        return self.location.startswith("s3://")

    def _s3_client(self):  # a botocore S3 client
        return (self.s3 or S3Resource()).get_client()

    def list_files(self) -> list[PromptFile]:
        """Every input file, sorted by name; a missing local folder is an error naming it."""
        if self.is_s3:
            bucket, prefix = _split_s3(self.location)
            paginator = self._s3_client().get_paginator("list_objects_v2")
            files = [
                PromptFile(key=obj["Key"][len(prefix) :], version=obj["ETag"].strip('"'))
                for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
                for obj in page.get("Contents", [])
                if obj["Key"].endswith(SUFFIX) and not obj["Key"][len(prefix) :].startswith(".")
            ]
            return sorted(files, key=lambda f: f.key)
        folder = Path(self.location)
        if not folder.is_dir():
            raise FileNotFoundError(f"batch prompts folder {folder} does not exist")
        return [
            PromptFile(key=path.name, version=f"{path.stat().st_size}-{path.stat().st_mtime_ns}")
            for path in sorted(folder.glob(f"*{SUFFIX}"))
            if path.is_file() and not path.name.startswith(".")
        ]

    def fetch(self, key: str, cache_dir: Path) -> Path:
        """A local path to the file named ``key``: the file itself, or a download of it."""
        if "/" in key or key.startswith(".") or not key.endswith(SUFFIX):
            raise ValueError(f"{key!r} is not an input file name (expected NAME{SUFFIX})")
        if not self.is_s3:
            path = Path(self.location) / key
            if not path.is_file():
                raise FileNotFoundError(f"batch input {path} does not exist")
            return path
        bucket, prefix = _split_s3(self.location)
        cache_dir.mkdir(parents=True, exist_ok=True)
        target = cache_dir / key
        partial = target.with_suffix(".download")
        body = self._s3_client().get_object(Bucket=bucket, Key=prefix + key)["Body"]
        with partial.open("wb") as handle:
            shutil.copyfileobj(body, handle)
        partial.replace(target)
        return target
