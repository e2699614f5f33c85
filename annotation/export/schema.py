"""The export's fixed columns: names, Arrow types and meaning, in file order.

Two schemas: one row per comparison (judgments aggregated, the default) and one row per judgment
(`raw`). Both start with the Pick-a-Pic v2 columns, then Loupe's own. docs/export.md is written
from the same facts; `tests/annotation/test_export.py` checks files against these schemas.
"""

import pyarrow as pa

# Bumped whenever a column is added, removed or changes meaning; recorded in snapshot params.
SCHEMA_VERSION = 1

_URL = pa.string()
_URLS = pa.list_(pa.string())

# (name, type, kind) where kind says which query column feeds it: "common" columns exist in both
# modes, "agg" only per comparison, "raw" only per judgment.
_PICKAPIC = [
    ("caption", pa.string()),
    ("jpg_0", _URL),  # binary when media is embedded
    ("jpg_1", _URL),
    ("label_0", pa.float64()),
    ("label_1", pa.float64()),
    ("model_0", pa.string()),
    ("model_1", pa.string()),
    ("image_0_uid", pa.string()),
    ("image_1_uid", pa.string()),
    ("best_image_uid", pa.string()),
    ("ranking_id", pa.int64()),
    # user_id: per comparison, the annotators' ids ordered by judgment id; per judgment, one id.
    ("user_id", None),
    ("has_label", pa.bool_()),
    ("are_different", pa.bool_()),
]

_LOUPE_COMMON_HEAD = [
    ("comparison_id", pa.int64()),
    ("round", pa.int32()),
    ("modality", pa.string()),
    ("is_gold", pa.bool_()),
]

_LOUPE_AGG = [
    ("num_judgments", pa.int32()),
    ("count_first", pa.int32()),
    ("count_second", pa.int32()),
    ("count_tie", pa.int32()),
    ("count_both_bad", pa.int32()),
    ("is_tie", pa.bool_()),
    ("agreement", pa.float64()),
    ("criteria", pa.string()),
]

_LOUPE_RAW = [
    ("judgment_id", pa.int64()),
    ("choice", pa.string()),
    ("is_tie", pa.bool_()),
    ("criteria", pa.string()),
    ("shown_swapped", pa.bool_()),
    ("time_on_task_ms", pa.int32()),
    ("created_at", pa.timestamp("us", tz="UTC")),
]

_LOUPE_COMMON_TAIL = [
    ("media_0", _URLS),
    ("media_1", _URLS),
    ("poster_0", _URL),
    ("poster_1", _URL),
    ("prompt_metadata", pa.string()),
    ("seed_0", pa.int64()),
    ("seed_1", pa.int64()),
]


def export_schema(*, raw: bool, embed_media: bool = False) -> pa.Schema:
    """The exact Arrow schema of an export (Parquet files carry it; JSONL follows it)."""
    fields = []
    for name, type_ in _PICKAPIC:
        if name == "user_id":
            type_ = pa.int64() if raw else pa.list_(pa.int64())
        elif name in ("jpg_0", "jpg_1") and embed_media:
            type_ = pa.binary()
        fields.append(pa.field(name, type_))
    fields += [pa.field(n, t) for n, t in _LOUPE_COMMON_HEAD]
    fields += [pa.field(n, t) for n, t in (_LOUPE_RAW if raw else _LOUPE_AGG)]
    fields += [pa.field(n, t) for n, t in _LOUPE_COMMON_TAIL]
    return pa.schema(fields)
