"""Damage to the embedded index is loud: every error names the folder and how to recover.

Qdrant Edge files damaged by hand (lost or corrupt alias pointer, a truncated or
missing shard, a shard of other vector settings), and a second process opening a
shard that a first one holds.
"""

import json
import shutil
import subprocess
import sys
import textwrap
import uuid

import pytest
import qdrant_edge as edge

from genai_assets.rag.edge_store import EdgeStore
from genai_assets.rag.vector_store import (
    CollectionSpec,
    DamagedIndexError,
    IndexLockedError,
    IndexPoint,
)
from genai_assets_tests.rag.test_vector_store import fill

NAME = "c-000000000000"


@pytest.fixture
def root(tmp_path):
    """An index with one collection behind the alias ``c``."""
    store = EdgeStore(tmp_path / "index")
    fill(store, NAME)
    store.swap_alias("c", NAME, None, {})
    store.close()
    return tmp_path / "index"


def open_and_count(root):
    store = EdgeStore(root)
    try:
        return store.count(store.resolve("c"))
    finally:
        store.close()


def test_intact_index_opens(root):
    assert open_and_count(root) == 4


def test_missing_alias_pointer(root):
    (root / "aliases" / "c.json").unlink()
    with pytest.raises(DamagedIndexError) as error:
        open_and_count(root)
    message = str(error.value)
    assert f"{root}/aliases/c.json is missing" in message
    assert "records swaps" in message and "materialize rag_serving_index again" in message


@pytest.mark.parametrize("content", ["{not json", json.dumps({"format": 1, "alias": "c"}), ""])
def test_corrupt_alias_pointer(root, content):
    (root / "aliases" / "c.json").write_text(content)
    with pytest.raises(
        DamagedIndexError, match=rf"alias pointer {root}/aliases/c.json is unreadable"
    ):
        open_and_count(root)


def test_pointer_to_a_collection_that_is_gone(root):
    shutil.rmtree(root / "collections" / NAME)
    with pytest.raises(DamagedIndexError, match=f"points at '{NAME}', which is not in"):
        open_and_count(root)


def test_truncated_shard(root):
    files = sorted(
        (p for p in (root / "collections" / NAME / "shard").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    for path in files:  # every file of the shard cut to half: none may pass silently
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DamagedIndexError) as error:
        open_and_count(root)
    message = str(error.value)
    assert f"{root}/collections/{NAME}" in message
    assert "rebuild it from the sources" in message and "document_embeddings" in message


def test_missing_shard(root):
    shutil.rmtree(root / "collections" / NAME / "shard")
    with pytest.raises(DamagedIndexError, match="shard of collection .* is missing from"):
        open_and_count(root)


def test_shard_written_with_other_vector_settings(root, tmp_path):
    other = tmp_path / "other"
    shard = edge.EdgeShard.create(
        str(other),
        edge.EdgeConfig(
            vectors={"dense": edge.EdgeVectorParams(size=8, distance=edge.Distance.Cosine)}
        ),
    )
    shard.close()
    target = root / "collections" / NAME / "shard"
    shutil.rmtree(target)
    shutil.copytree(other, target)
    with pytest.raises(DamagedIndexError, match="written with other vector settings") as error:
        open_and_count(root)
    assert f"delete {root}/collections/{NAME}" in str(error.value)


def test_unreadable_spec(root):
    (root / "collections" / NAME / "collection.json").write_text("[]")
    with pytest.raises(DamagedIndexError, match="collection.json of collection .* is unreadable"):
        EdgeStore(root).collection_spec(NAME)


def test_interrupted_create_is_cleared(root):
    # A create killed before its spec was written leaves a shard folder without one.
    leftover = root / "collections" / "c-111111111111"
    (leftover / "shard").mkdir(parents=True)
    (leftover / "shard" / "junk").write_text("x")
    store = EdgeStore(root)
    assert "c-111111111111" not in store.list_collections()
    store.create_collection("c-111111111111", CollectionSpec(4))
    assert store.count("c-111111111111") == 0
    store.close()


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from genai_assets.rag.edge_store import EdgeStore
    store = EdgeStore(Path(sys.argv[1]))
    store.count({name!r})
    print("holding", flush=True)
    time.sleep(60)
    """
)


def test_second_process_gets_a_clear_error_naming_the_folder(root):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(name=NAME), str(root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(IndexLockedError) as error:
            open_and_count(root)
        assert f"index folder {root}/collections/{NAME} is open in another process" in str(
            error.value
        )
    finally:
        holder.kill()
        holder.wait()
    assert open_and_count(root) == 4  # free again once the holder is gone


@pytest.fixture
def large_root(tmp_path):
    """3,000 points with ~1 kB payloads: enough that every data file has content."""
    store = EdgeStore(tmp_path / "large")
    store.create_collection(NAME, CollectionSpec(4))
    store.upsert(
        NAME,
        [
            IndexPoint(
                str(uuid.uuid5(uuid.NAMESPACE_URL, str(i))),
                [1.0, 0, 0, float(i)],
                {"text": "x" * 900},
            )
            for i in range(3000)
        ],
    )
    store.close()
    return tmp_path / "large"


@pytest.mark.parametrize(
    "damaged",
    [
        "payload_storage/tracker.dat",  # Qdrant Edge itself opens this one without a word
        "payload_storage/page_0.dat",
        "vector_storage-dense/vectors/chunk_0.mmap",
    ],
)
def test_truncated_data_file_is_reported(large_root, damaged):
    [path] = (large_root / "collections" / NAME / "shard" / "segments").glob(f"*/{damaged}")
    path.write_bytes(path.read_bytes()[:100])
    store = EdgeStore(large_root)
    try:
        with pytest.raises(DamagedIndexError, match=rf"{large_root}/collections/{NAME}.*rebuild"):
            store.count(NAME)
            list(store.scroll(NAME, with_vectors=True))
            store.query(NAME, dense=[1.0, 0, 0, 1.0], limit=3)
    finally:
        store.close()
