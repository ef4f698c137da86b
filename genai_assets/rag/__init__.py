"""Pure RAG logic: loading, chunking, ids, embedding and incremental sync (no dagster)."""
