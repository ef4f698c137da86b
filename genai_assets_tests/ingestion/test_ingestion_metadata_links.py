"""Links to artifacts in the RAG assets' metadata."""

import dagster as dg
import pytest

from genai_assets.defs.rag.metadata import qdrant_location
from genai_assets.resources.qdrant import QdrantResource


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (
            QdrantResource(url="https://qdrant.example.com:6333/"),
            dg.MetadataValue.url("https://qdrant.example.com:6333/dashboard#/collections/docs-1"),
        ),
        (QdrantResource(location="/srv/qdrant"), dg.MetadataValue.path("/srv/qdrant")),
        (QdrantResource(location=":memory:"), dg.MetadataValue.path(":memory:")),
    ],
)
def test_qdrant_location_links_the_collection_or_the_folder(resource, expected):
    assert qdrant_location(resource, "docs-1") == expected


def test_qdrant_location_defaults_to_the_folder_under_dagster_home(monkeypatch, tmp_path):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert qdrant_location(QdrantResource(), "docs-1") == dg.MetadataValue.path(
        str(tmp_path / "storage" / "index")
    )
