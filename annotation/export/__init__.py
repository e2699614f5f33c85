"""Preference-dataset export (Parquet, JSONL; Pick-a-Pic v2 columns plus Loupe's) and snapshots.

See docs/export.md for every column. Entry points:

- `export_rows(campaign=, raw=, base_url=)` -> dicts, one per comparison (or per judgment);
- `export_stream(campaign=, fmt=, raw=, embed_media=, base_url=)` -> bytes chunks, bounded memory;
- `snapshot_create(campaign=, fmt=, raw=, created_by=)` / `snapshot_open(snapshot=)`.
"""

from annotation.export.schema import SCHEMA_VERSION, export_schema
from annotation.export.snapshots import snapshot_create, snapshot_filename, snapshot_open
from annotation.export.stream import (
    CONTENT_TYPES,
    EXTENSIONS,
    FORMATS,
    ExportStats,
    export_rows,
    export_stream,
)

__all__ = [
    "CONTENT_TYPES",
    "EXTENSIONS",
    "FORMATS",
    "SCHEMA_VERSION",
    "ExportStats",
    "export_rows",
    "export_schema",
    "export_stream",
    "snapshot_create",
    "snapshot_filename",
    "snapshot_open",
]
