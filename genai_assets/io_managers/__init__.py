"""Storage of asset values: tables, JSON documents, DataFrames and model folders.

``LocalFormatIOManager`` (a local folder) and ``S3FormatIOManager`` (an S3
bucket and prefix) share one implementation; which one is bound follows from
the environment, in ``genai_assets/defs/resources.py``.
"""

from genai_assets.io_managers.io_manager import (
    FormatIOManagerBase,
    LocalFormatIOManager,
    S3FormatIOManager,
)
from genai_assets.io_managers.storage import BucketNotFoundError

__all__ = [
    "BucketNotFoundError",
    "FormatIOManagerBase",
    "LocalFormatIOManager",
    "S3FormatIOManager",
]
