"""Fixtures of the RAG tests: a store of each index engine (see engines.py)."""

import pytest

from genai_assets_tests.rag.engines import ENGINES, open_engine


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    """The engine's name."""
    return request.param


@pytest.fixture
def store(engine, tmp_path):
    """An open store of each engine, closed after the test."""
    opened = open_engine(engine, tmp_path)
    yield opened
    opened.close()
