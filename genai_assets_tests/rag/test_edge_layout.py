"""What a Qdrant Edge collection keeps in memory and indexes: the choices that keep opens fast."""

import qdrant_edge as edge

from genai_assets.rag.edge_store import EdgeStore
from genai_assets.rag.vector_store import CollectionSpec


def test_only_the_document_id_is_indexed_memory_mapped_and_outside_the_graph(tmp_path):
    # An in-memory keyword index is read whole at every open (most of the open time at
    # 100k points) and one per value adds graph links to the HNSW build; the only filter
    # the pipeline runs is by document id, which a memory-mapped index answers.
    store = EdgeStore(tmp_path)
    store.create_collection("c-000000000000", CollectionSpec(4))
    store.close()
    shard = edge.EdgeShard.load(str(store.collection_dir("c-000000000000") / "shard"))
    try:
        schema = shard.info().payload_schema
    finally:
        shard.close()
    assert sorted(schema) == ["doc_id"]
    params = schema["doc_id"].params
    assert schema["doc_id"].data_type == edge.PayloadSchemaType.Keyword
    assert params.memory == edge.Memory.Cold
    assert params.enable_hnsw is False
