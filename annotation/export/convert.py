"""Wire batches (what the query sends) -> export batches (the schema), and export batches -> JSONL.

Everything here is vectorised Arrow compute: media URLs from sample ids and the URL patterns of
`annotation:media` / `annotation:poster`, model names from a small id -> name table, lists from
counts. JSONL lines are assembled column by column the same way, so a JSONL row and a Parquet row
are the same values by construction.
"""

import base64
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from django.urls import reverse

from annotation.export.schema import export_schema
from annotation.models import Choice

_ID, _INDEX = 987654321, 123456789  # sentinels: split a reversed URL into its constant parts


@dataclass(frozen=True)
class Context:
    raw: bool
    embed_media: bool
    modality: str
    criteria: tuple[str, ...]  # the campaign's, in order: keys of the `criteria` column
    models: dict[int, str]  # model version id -> "generator/version"
    media_prefix: str
    media_middle: str
    media_suffix: str
    poster_prefix: str
    poster_suffix: str

    @classmethod
    def make(
        cls, *, raw: bool, embed_media: bool, modality: str, criteria, models: dict[int, str], base_url: str
    ) -> "Context":
        media = reverse("annotation:media", kwargs={"sample_id": _ID, "index": _INDEX})
        m_pre, rest = media.split(str(_ID))
        m_mid, m_suf = rest.split(str(_INDEX))
        poster = reverse("annotation:poster", kwargs={"sample_id": _ID})
        p_pre, p_suf = poster.split(str(_ID))
        base = base_url.rstrip("/")
        return cls(raw, embed_media, modality, tuple(criteria), models, base + m_pre, m_mid, m_suf, base + p_pre, p_suf)


def _media_urls(ctx: Context, samples: pa.Array, nfiles: pa.Array) -> pa.ListArray:
    counts = nfiles.to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    ids = np.repeat(samples.to_numpy(zero_copy_only=False), counts)
    index = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1].astype(np.int64), counts)
    values = pc.binary_join_element_wise(
        ctx.media_prefix,
        pc.cast(pa.array(ids), pa.string()),
        ctx.media_middle,
        pc.cast(pa.array(index), pa.string()),
        ctx.media_suffix,
        "",
    )
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _poster_urls(ctx: Context, samples: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(ctx.poster_prefix, pc.cast(samples, pa.string()), ctx.poster_suffix, "")


def _models(ctx: Context, ids: pa.Array) -> pa.Array:
    keys = list(ctx.models)
    positions = pc.index_in(ids, value_set=pa.array(keys, pa.int64()))
    return pc.take(pa.array([ctx.models[k] for k in keys], pa.string()), positions)


def _side(ctx: Context, k: int, col, embedded: pa.Array | None) -> dict[str, pa.Array]:
    """One side's columns. A sample recurs in many rows: its URLs are built once, then repeated."""
    ids = col(f"_sample_{k}").to_numpy(zero_copy_only=False).astype(np.int64)
    unique, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    first, inverse = pa.array(first), pa.array(inverse.reshape(-1))
    samples = pa.array(unique)
    media_lists = _media_urls(ctx, samples, pc.take(col(f"_nfiles_{k}"), first))
    posters = _poster_urls(ctx, samples)
    columns = {
        f"media_{k}": media_lists,
        f"poster_{k}": pc.if_else(pc.take(col(f"_has_poster_{k}"), first), posters, pa.scalar(None, pa.string())),
        f"image_{k}_uid": pc.cast(samples, pa.string()),
    }
    if embedded is None:
        jpg_is_poster = pc.take(col(f"_jpg_is_poster_{k}"), first)
        columns[f"jpg_{k}"] = pc.if_else(jpg_is_poster, posters, pc.list_element(media_lists, 0))
    columns = {name: pc.take(values, inverse) for name, values in columns.items()}
    if embedded is not None:
        columns[f"jpg_{k}"] = embedded
    columns[f"model_{k}"] = _models(ctx, col(f"_mv_{k}"))
    return columns


def _criteria_json(ctx: Context, col, n: int) -> pa.Array:
    """{"criterion": {"first": 1, "second": 0, "tie": 2, "both_bad": 0}, ...} as JSON text."""
    if not ctx.criteria:
        return pa.array(["{}"] * n, pa.string())
    parts: list = []
    for i, name in enumerate(ctx.criteria):
        for j, choice in enumerate(Choice.values):
            opening = ("{" if i == 0 else ", ") + json.dumps(name) + ": {" if j == 0 else ", "
            parts += [opening + json.dumps(choice) + ": ", pc.cast(col(f"_crit{i}_{choice}"), pa.string())]
        parts.append("}")
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "")


_CHOICES = pa.array(Choice.values, pa.string())  # first, second, tie, both_bad
_LABELS = (pa.array([1.0, 0.0, 0.5, None], pa.float64()), pa.array([0.0, 1.0, 0.5, None], pa.float64()))


def _raw_columns(ctx: Context, col, derived: dict[str, pa.Array], n: int) -> dict[str, pa.Array]:
    """A judgment's labels (1/0, 0/1, halves for a tie, null for both bad), winner and criteria."""
    choice = col("choice")
    index = pc.index_in(choice, value_set=_CHOICES)
    empty = pa.scalar("", pa.string())
    best = pc.if_else(
        pc.equal(choice, "first"),
        derived["image_0_uid"],
        pc.if_else(pc.equal(choice, "second"), derived["image_1_uid"], empty),
    )
    # {"criterion": "choice", ...} over the criteria the judgment gave, in the campaign's order.
    empty_piece = pa.scalar("", pa.string())
    inner = pa.array([""] * n, pa.string())
    for i, name in enumerate(ctx.criteria):
        given = col(f"_crit{i}")
        text = pc.binary_join_element_wise(json.dumps(name) + ": ", _json_strings(given), "")
        piece = pc.if_else(pc.is_null(given), empty_piece, text)
        joined = pc.binary_join_element_wise(inner, piece, ", ")
        inner = pc.if_else(pc.equal(inner, ""), piece, pc.if_else(pc.equal(piece, ""), inner, joined))
    criteria = pc.binary_join_element_wise("{", inner, "}", "")
    return {
        "label_0": pc.take(_LABELS[0], index),
        "label_1": pc.take(_LABELS[1], index),
        "best_image_uid": best,
        "ranking_id": col("judgment_id"),
        "has_label": pc.not_equal(choice, "both_bad"),
        "is_tie": pc.equal(choice, "tie"),
        "criteria": criteria,
    }


def to_export(wire: pa.RecordBatch | pa.Table, ctx: Context, media: dict[int, pa.Array] | None = None) -> pa.Table:
    """Build the export schema's columns from a wire batch. `media`: embedded jpg_0/jpg_1 bytes."""

    def col(name: str) -> pa.Array:
        return _flat(wire.column(name))

    n = wire.num_rows
    derived: dict[str, pa.Array] = {
        "modality": pa.array([ctx.modality] * n, pa.string()) if n else pa.array([], pa.string())
    }
    for k in (0, 1):
        derived |= _side(ctx, k, col, embedded=None if media is None else media[k])
    if ctx.raw:
        derived |= _raw_columns(ctx, col, derived, n)
    else:
        derived["user_id"] = pc.cast(pc.split_pattern(col("_user_ids"), " "), pa.list_(pa.int64()))
        derived["criteria"] = _criteria_json(ctx, col, n)
    schema = export_schema(raw=ctx.raw, embed_media=ctx.embed_media)
    arrays = []
    for field in schema:
        array = derived[field.name] if field.name in derived else col(field.name)
        arrays.append(array if array.type == field.type else array.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _flat(array) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        return array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    return array


# ---------------------------------------------------------------- JSONL

_NULL = pa.scalar("null", pa.string())
_RARE_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))


def _json_strings(array: pa.Array, *, plain: bool = False) -> pa.Array:
    """JSON string literals for a string array (nulls -> null).

    `plain`: the values are known to need no escaping (URLs built here, ids, fixed vocabularies).
    Otherwise only the escapes that occur are applied; rare control characters other than
    newline, carriage return and tab send the column through the json module.
    """
    if plain:
        return pc.fill_null(pc.binary_join_element_wise('"', array, '"', ""), _NULL)
    # Free text repeats (captions per prompt, criteria, metadata): escape each distinct value once.
    encoded = pc.dictionary_encode(array)
    distinct = encoded.dictionary
    if pc.any(pc.match_substring_regex(distinct, _RARE_CONTROL)).as_py():
        quoted = pa.array([json.dumps(v, ensure_ascii=False) for v in distinct.to_pylist()], pa.string())
    else:
        for char, escape in _ESCAPES:
            if pc.any(pc.match_substring(distinct, char)).as_py():
                distinct = pc.replace_substring(distinct, char, escape)
        quoted = pc.binary_join_element_wise('"', distinct, '"', "")
    return pc.fill_null(pc.take(quoted, encoded.indices), _NULL)


def _json_values(array: pa.Array, *, plain: bool = False) -> pa.Array:
    t = array.type
    if pa.types.is_string(t):
        return _json_strings(array, plain=plain)
    if pa.types.is_binary(t):
        encoded = [None if v is None else base64.b64encode(v).decode("ascii") for v in array.to_pylist()]
        return _json_strings(pa.array(encoded, pa.string()), plain=True)
    if pa.types.is_timestamp(t):
        # UTC wall time as ISO 8601: "2024-05-01T12:00:00.123456Z" (casting a naive timestamp to
        # text is ~30x faster than formatting one with a zone).
        naive = pc.cast(array.cast(pa.timestamp(t.unit)), pa.string())
        text = pc.replace_substring(naive, " ", "T", max_replacements=1)
        return pc.fill_null(pc.binary_join_element_wise('"', text, 'Z"', ""), _NULL)
    if pa.types.is_list(t):
        values = pc.list_flatten(array)  # respects slicing, unlike .values
        inner = _json_values(values, plain=plain) if len(values) else pa.array([], pa.string())
        lists = pa.ListArray.from_arrays(_zero_based_offsets(array), inner, mask=array.is_null())
        return pc.fill_null(pc.binary_join_element_wise("[", pc.binary_join(lists, ","), "]", ""), _NULL)
    # numbers and booleans: Arrow's text form is valid JSON (shortest round-trip floats)
    return pc.fill_null(pc.cast(array, pa.string()), _NULL)


def _zero_based_offsets(array: pa.ListArray) -> pa.Array:
    offsets = array.offsets.to_numpy()
    return pa.array(offsets - offsets[0])


def _is_plain(text: str) -> bool:
    return not any(c in '"\\' or ord(c) < 0x20 for c in text)


# Columns whose values never need JSON escaping when the URL prefixes do not.
_PLAIN_COLUMNS = {"image_0_uid", "image_1_uid", "best_image_uid", "modality", "choice"}
_URL_COLUMNS = {"jpg_0", "jpg_1", "media_0", "media_1", "poster_0", "poster_1"}


def to_jsonl(table: pa.Table, ctx: Context) -> bytes:
    """The rows as JSON Lines, keys in schema order."""
    if table.num_rows == 0:
        return b""
    urls_plain = all(
        _is_plain(part)
        for part in (ctx.media_prefix, ctx.media_middle, ctx.media_suffix, ctx.poster_prefix, ctx.poster_suffix)
    )
    parts: list = []
    for i, name in enumerate(table.schema.names):
        plain = name in _PLAIN_COLUMNS or (urls_plain and name in _URL_COLUMNS)
        parts.append(("{" if i == 0 else ",") + json.dumps(name) + ":")
        parts.append(_json_values(_flat(table.column(i)), plain=plain))
    parts.append("}\n")
    lines = pc.binary_join_element_wise(*parts, "")
    # The values buffer of the joined array is exactly the lines, back to back.
    _, offsets, data = lines.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int32, count=len(lines) + 1, offset=4 * lines.offset)
    return data[int(bounds[0]) : int(bounds[-1])].to_pybytes()
