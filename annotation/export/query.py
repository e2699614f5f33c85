"""The export query: what PostgreSQL computes, as narrow "wire" columns streamed by COPY ... CSV.

Judgments are aggregated per comparison IN SQL (GROUP BY with count FILTER per choice and per
criterion and choice, annotator ids joined into a string); labels, ties and agreement are computed
there too. What repeats per row and is cheap to derive (media URLs, model names, lists) leaves the
database as integers and flags and is built vectorised in Arrow (see convert.py), which keeps both
the database's and Python's work per row small.
"""

from dataclasses import dataclass

import pyarrow as pa

from annotation.models import Campaign, Choice, Comparison, Judgment, Prompt, Round, Sample

# Hidden columns present when media is embedded: the storage names to read for jpg_0 / jpg_1.
FILE_COLUMNS = ("_file_0", "_file_1")


@dataclass(frozen=True)
class ExportQuery:
    sql: str  # a SELECT ... ORDER BY <stable key>
    params: dict
    wire: pa.Schema  # the SELECT's columns and how to parse them from CSV


def _side(s: str, k: int) -> list[tuple[str, str, pa.DataType]]:
    """Columns of one sample (`k` = 0 or 1), aliased `s`."""
    return [
        (f"_sample_{k}", f"{s}.id", pa.int64()),
        (f"_mv_{k}", f"{s}.model_version_id", pa.int64()),
        (f"_nfiles_{k}", f"cardinality({s}.files)", pa.int32()),
        (f"_has_poster_{k}", f"{s}.poster <> ''", pa.bool_()),
        # A video's "jpg" is its poster frame (an image); images and view sets give their first file.
        (f"_jpg_is_poster_{k}", f"({s}.kind = 'video' AND {s}.poster <> '')", pa.bool_()),
        (f"seed_{k}", f"{s}.seed", pa.int64()),
    ]


def _file_columns() -> list[tuple[str, str, pa.DataType]]:
    return [
        (
            f"_file_{k}",
            f"CASE WHEN {s}.kind = 'video' AND {s}.poster <> '' THEN {s}.poster ELSE {s}.files[1] END",
            pa.string(),
        )
        for k, s in ((0, "s0"), (1, "s1"))
    ]


def _joins() -> str:
    t = {m: m._meta.db_table for m in (Round, Prompt, Sample)}
    return f"""
        JOIN {t[Round]} r ON r.id = c.round_id
        JOIN {t[Prompt]} p ON p.id = c.prompt_id
        JOIN {t[Sample]} s0 ON s0.id = c.sample_first_id
        JOIN {t[Sample]} s1 ON s1.id = c.sample_second_id"""


def _criteria_columns(criteria: list[str]) -> list[tuple[str, str, pa.DataType]]:
    """Per criterion and choice, the count over the group (convert.py renders them as JSON)."""
    return [
        (f"_crit{n}_{choice}", f"a.crit{n}_{choice}", pa.int32())
        for n in range(len(criteria))
        for choice in Choice.values
    ]


def _criteria_counts(criteria: list[str]) -> str:
    """Aggregates for `_criteria_columns`, over crit0, crit1, ... that the inner query extracted
    from the judgment's jsonb once per row (not once per criterion and choice)."""
    return "".join(
        f", count(*) FILTER (WHERE j.crit{n} = '{choice}') AS crit{n}_{choice}"
        for n in range(len(criteria))
        for choice in Choice.values
    )


def _common_head() -> list[tuple[str, str, pa.DataType]]:
    return [
        ("caption", "p.text", pa.string()),
        ("are_different", "s0.files IS DISTINCT FROM s1.files", pa.bool_()),
        ("comparison_id", "c.id", pa.int64()),
        ("round", "r.number", pa.int32()),
        ("is_gold", "c.is_gold", pa.bool_()),
        ("prompt_metadata", "p.metadata::text", pa.string()),
    ]


def build_query(*, campaign: Campaign, raw: bool, embed_media: bool = False) -> ExportQuery:
    params: dict = {"campaign": campaign.pk}
    comparison, round_, judgment = Comparison._meta.db_table, Round._meta.db_table, Judgment._meta.db_table
    columns = _common_head()
    if raw:
        # Labels, ties and the winner follow from `choice` alone: derived in Arrow (convert.py).
        columns += [
            ("judgment_id", "j.id", pa.int64()),
            ("user_id", "j.annotator_id", pa.int64()),
            ("choice", "j.choice", pa.string()),
            ("shown_swapped", "j.left_sample_id = c.sample_second_id", pa.bool_()),
            ("time_on_task_ms", "j.time_on_task_ms", pa.int32()),
            ("created_at", "j.created_at", pa.timestamp("us", tz="UTC")),
        ]
        # The judgment's choice per campaign criterion (null when not given); rendering jsonb as
        # text costs the database more than extracting the few keys a campaign has.
        for n, name in enumerate(campaign.criteria):
            params[f"crit{n}"] = name
            columns.append((f"_crit{n}", f"j.criteria ->> %(crit{n})s::text", pa.string()))
        source = f"""
            FROM {judgment} j
            JOIN {comparison} c ON c.id = j.comparison_id{_joins()}
            WHERE r.campaign_id = %(campaign)s"""
        # Grouped by comparison (then judgment id): lets PostgreSQL merge-join in index order and
        # stream at once instead of sorting a million wide rows first.
        order = "j.comparison_id, j.id"
    else:
        decisive = "(a.n_first + a.n_second + a.n_tie)"
        columns += [
            # Exact halves: one float division of integers, so equal counts give equal labels.
            (
                "label_0",
                f"CASE WHEN {decisive} > 0 THEN (2 * a.n_first + a.n_tie)::float8 / (2 * {decisive}) END",
                pa.float64(),
            ),
            (
                "label_1",
                f"CASE WHEN {decisive} > 0 THEN (2 * a.n_second + a.n_tie)::float8 / (2 * {decisive}) END",
                pa.float64(),
            ),
            (
                "best_image_uid",
                "CASE WHEN a.n_first > a.n_second THEN s0.id::text"
                " WHEN a.n_second > a.n_first THEN s1.id::text ELSE '' END",
                pa.string(),
            ),
            ("ranking_id", "c.id", pa.int64()),
            ("_user_ids", "a.users", pa.string()),
            ("has_label", f"{decisive} > 0", pa.bool_()),
            ("num_judgments", "a.n", pa.int32()),
            ("count_first", "a.n_first", pa.int32()),
            ("count_second", "a.n_second", pa.int32()),
            ("count_tie", "a.n_tie", pa.int32()),
            ("count_both_bad", "a.n_both_bad", pa.int32()),
            ("is_tie", f"{decisive} > 0 AND a.n_first = a.n_second", pa.bool_()),
            ("agreement", "greatest(a.n_first, a.n_second, a.n_tie, a.n_both_bad)::float8 / a.n", pa.float64()),
        ]
        columns += _criteria_columns(list(campaign.criteria))
        counts = ", ".join(f"count(*) FILTER (WHERE j.choice = '{v}') AS n_{v}" for v in Choice.values)
        criteria = list(campaign.criteria)
        extracted = "".join(f", j.criteria ->> %(crit{n})s::text AS crit{n}" for n in range(len(criteria)))
        params |= {f"crit{n}": name for n, name in enumerate(criteria)}
        source = f"""
            FROM (
                SELECT j.comparison_id, count(*) AS n, {counts},
                       array_to_string(array_agg(j.annotator_id ORDER BY j.id), ' ') AS users
                       {_criteria_counts(criteria)}
                FROM (
                    SELECT j.id, j.comparison_id, j.choice, j.annotator_id{extracted}
                    FROM {judgment} j
                    WHERE j.comparison_id IN (
                        SELECT cc.id FROM {comparison} cc JOIN {round_} rr ON rr.id = cc.round_id
                        WHERE rr.campaign_id = %(campaign)s
                    )
                ) j
                GROUP BY j.comparison_id
            ) a
            JOIN {comparison} c ON c.id = a.comparison_id{_joins()}"""  # noqa: S608
        order = "c.id"
    columns += _side("s0", 0) + _side("s1", 1)
    if embed_media:
        columns += _file_columns()
    select = ",\n".join(f'{expr} AS "{name}"' for name, expr, _ in columns)
    wire = pa.schema([pa.field(name, type_) for name, _, type_ in columns])
    return ExportQuery(sql=f"SELECT {select}{source}\nORDER BY {order}", params=params, wire=wire)
