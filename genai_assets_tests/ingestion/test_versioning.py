"""The settings fingerprint that versions a collection."""

from genai_assets.rag.model_files import PACKAGED_MODEL
from genai_assets.rag.versioning import IngestSettings


def test_the_fingerprint_covers_device_dtype_and_model_revision():
    base = {"model_revision": "r1", "device": "cpu", "dtype": "fp32"}
    fingerprints = {
        IngestSettings(PACKAGED_MODEL, 254, 32, **{**base, **change}).fingerprint()
        for change in (
            {},
            {"dtype": "bf16"},
            {"device": "cuda"},
            {"model_revision": "r2"},
            {"contextual": True},
        )
    }
    assert len(fingerprints) == 5
