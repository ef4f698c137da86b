"""Fixtures for the production-storage tests: a real local S3 server (moto) and the env."""

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pytest

# Not a real credential: moto accepts any key. A unique value lets the leak test
# search logs and metadata for it without false matches.
FAKE_ACCESS_KEY_ID = "AKIAGENAIASSETSTEST"


@dataclass
class S3Env:
    """The S3 environment one test runs against."""

    endpoint: str
    bucket: str
    secret_access_key: str
    client: Any  # a boto3 S3 client, for checking what was written


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, dagster_home: Path) -> S3Env:
    """Production S3 settings in the environment, pointing at moto, with a fresh bucket."""
    bucket = f"genai-assets-{uuid.uuid4().hex[:12]}"
    secret = f"fake-secret-{uuid.uuid4().hex}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": "us-east-1",
        "GENAI_ASSETS_S3_ENDPOINT_URL": s3_endpoint,
        "GENAI_ASSETS_S3_BUCKET": bucket,
        "GENAI_ASSETS_S3_PREFIX": "genai_assets",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("GENAI_ASSETS_S3_CREATE_BUCKET", raising=False)
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=secret,
    )
    client.create_bucket(Bucket=bucket)
    return S3Env(endpoint=s3_endpoint, bucket=bucket, secret_access_key=secret, client=client)


@pytest.fixture
def instance(dagster_home: Path) -> dg.DagsterInstance:
    """An in-memory instance (runs and event log), several times faster than SQLite.

    $DAGSTER_HOME stays ``dagster_home``, so storage_root() points into the test's folder.
    """
    return dg.DagsterInstance.ephemeral()
