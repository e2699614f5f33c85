"""Fill a separate benchmark database in bulk: `python -m bench.seed --judgments 1000000`.

Creates (or with --reset drops and recreates) the database, migrates it, then writes with
server-side `INSERT ... SELECT generate_series` (no rows travel through Python):

- annotators bench-0..N-1 (one known password, hashed once) and memberships in campaign "bench";
- round 1, CLOSED: the history. ceil(J / overlap) comparisons, each judged by `overlap` distinct
  annotators (judgment g goes to annotator g mod N), so J done assignments + J judgments, with
  slots_taken = judgment_count = the rows each comparison has;
- round 2, OPEN: --open-comparisons fresh comparisons (slots 0) for the load run to claim.

Every prompt has 4 samples (two model versions) and yields its 6 distinct pairs. Every sample
points at one small PNG written once under MEDIA_ROOT. Prints elapsed time per phase; the last
line is a JSON summary.
"""

import argparse
import json
import math
import sys
import time
import zlib
from contextlib import contextmanager

import psycopg
from psycopg import sql

from bench import CAMPAIGN_NAME, DEFAULT_DATABASE, PASSWORD, PG_SERVER, USERNAME_PREFIX, check_database_name

SAMPLES_PER_PROMPT = 4
PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))  # the 6 pairs of a prompt's 4 samples
PIXEL_NAME = "bench/pixel.png"
CRITERIA = ["prompt_alignment", "visual_quality"]
BULK_TABLES = (
    "annotation_prompt",
    "annotation_sample",
    "annotation_comparison",
    "annotation_assignment",
    "annotation_judgment",
)


def _png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = (1).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])  # 1x1, 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x80\x80\x80"))
        + chunk(b"IEND", b"")
    )


class Phases:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        print(f"  {name} ...", end="", flush=True)
        yield
        self.times[name] = round(time.perf_counter() - start, 2)
        print(f" {self.times[name]:.2f} s", flush=True)


def create_database(name: str, reset: bool) -> None:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and not reset:
            raise SystemExit(f"database {name} exists; pass --reset to drop and recreate it")
        if exists:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def seed_round(cur, *, round_id: int, comparisons: int, base: dict[str, int], mv: tuple[int, int], judgments: int = 0):
    """Prompts, samples and comparisons of one round; ids continue from `base`, which is advanced.

    With `judgments` > 0 (the closed history round) comparison k is created full: its counters are
    min(overlap, what is left of the judgments), matching the rows written afterwards.
    """
    prompts = math.ceil(comparisons / len(PAIRS))
    samples = prompts * SAMPLES_PER_PROMPT
    params = {
        "round": round_id,
        "p0": base["prompt"],
        "s0": base["sample"],
        "c0": base["comparison"],
        "np": prompts,
        "ns": samples,
        "nc": comparisons,
        "mv0": mv[0],
        "mv1": mv[1],
        "file": PIXEL_NAME,
        "spp": SAMPLES_PER_PROMPT,
        "npairs": len(PAIRS),
        "firsts": [a for a, _ in PAIRS],
        "seconds": [b for _, b in PAIRS],
    }
    cur.execute(
        """
        INSERT INTO annotation_prompt (id, round_id, text, metadata)
        SELECT %(p0)s + g, %(round)s, 'bench prompt ' || g || ': a red cube on a blue sphere', '{}'::jsonb
        FROM generate_series(1, %(np)s) g
        """,
        params,
    )
    cur.execute(
        """
        INSERT INTO annotation_sample (id, prompt_id, round_id, model_version_id, seed, settings, kind, files,
                                       mime_types, poster, verifier_score, created_at)
        SELECT %(s0)s + g, %(p0)s + 1 + (g - 1) / %(spp)s, %(round)s,
               CASE WHEN g %% 2 = 0 THEN %(mv0)s ELSE %(mv1)s END, g, '{}'::jsonb, 'image',
               ARRAY[%(file)s]::varchar[], ARRAY['image/png']::varchar[], '', random(), now()
        FROM generate_series(1, %(ns)s) g
        """,
        params,
    )
    cur.execute(
        """
        INSERT INTO annotation_comparison (id, round_id, prompt_id, sample_first_id, sample_second_id, priority,
                                           is_gold, gold_answer, overlap, slots_taken, judgment_count, created_at)
        SELECT %(c0)s + 1 + k, %(round)s, %(p0)s + 1 + k / %(npairs)s,
               %(s0)s + 1 + (k / %(npairs)s) * %(spp)s + (%(firsts)s::int[])[1 + k %% %(npairs)s],
               %(s0)s + 1 + (k / %(npairs)s) * %(spp)s + (%(seconds)s::int[])[1 + k %% %(npairs)s],
               CASE WHEN %(nj)s > 0 THEN 0 ELSE random() END, false, '', %(overlap)s,
               GREATEST(0, LEAST(%(overlap)s, %(nj)s - k * %(overlap)s)),
               GREATEST(0, LEAST(%(overlap)s, %(nj)s - k * %(overlap)s)), now()
        FROM generate_series(0, %(nc)s - 1) k
        """,
        params | {"overlap": base["overlap"], "nj": judgments},
    )
    base["prompt"] += prompts
    base["sample"] += samples
    base["comparison"] += comparisons
    return prompts, samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--judgments", type=int, default=1_000_000, help="historical judgments (default 1e6)")
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--annotators", type=int, default=64, help="bench-0..N-1 accounts (default 64)")
    parser.add_argument("--overlap", type=int, default=3, help="judgments wanted per comparison (default 3)")
    parser.add_argument("--open-comparisons", type=int, default=200_000, help="open round size (default 200k)")
    parser.add_argument("--reset", action="store_true", help="drop and recreate the database if it exists")
    args = parser.parse_args(argv)
    name = check_database_name(args.database)
    if args.annotators < args.overlap:
        raise SystemExit("--annotators must be >= --overlap (a comparison needs distinct annotators)")
    if args.judgments < 0 or args.open_comparisons < 1:
        raise SystemExit("--judgments must be >= 0 and --open-comparisons >= 1")

    phase = Phases()
    started = time.perf_counter()
    print(f"Seeding database {name}")
    with phase("create database"):
        create_database(name, args.reset)

    with phase("migrate"):
        from bench import setup_django

        setup_django(name)
        from django.conf import settings
        from django.contrib.auth.hashers import make_password
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        from django.db import connections

        connections.close_all()

    with phase("media + password hash"):
        pixel = settings.MEDIA_ROOT / PIXEL_NAME
        pixel.parent.mkdir(parents=True, exist_ok=True)
        pixel.write_bytes(_png_1x1())
        password_hash = make_password(PASSWORD)

    J, N, overlap = args.judgments, args.annotators, args.overlap
    history_comparisons = math.ceil(J / overlap)
    conn = psycopg.connect(f"{PG_SERVER}/{name}")
    with conn, conn.cursor() as cur:
        cur.execute("SET synchronous_commit = off")
        cur.execute("SET maintenance_work_mem = '256MB'")
        cur.execute("SET work_mem = '64MB'")
        # Per-row foreign-key triggers dominate a bulk insert; drop the FKs of the bulk tables and
        # add them back afterwards: ADD CONSTRAINT validates all rows in one join, much faster.
        with phase("drop foreign keys of the bulk tables"):
            cur.execute(
                """
                SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
                WHERE contype = 'f' AND conrelid = ANY(%s::regclass[])
                """,
                [list(BULK_TABLES)],
            )
            foreign_keys = cur.fetchall()
            for table, con, _ in foreign_keys:
                cur.execute(
                    sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(table), sql.Identifier(con))
                )
        with phase("users, campaign, rounds"):
            cur.execute(
                """
                INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, email,
                                       is_staff, is_active, date_joined)
                SELECT g + 1, %s, false, %s || g, '', '', '', false, true, now()
                FROM generate_series(0, %s - 1) g
                """,
                [password_hash, USERNAME_PREFIX, N],
            )
            cur.execute(
                "INSERT INTO training_generator (name, modality, family, source, created_at)"
                " VALUES ('bench', 'image', 'external', '', now()) RETURNING id"
            )
            generator_id = cur.fetchone()[0]
            mv = []
            for version in ("v0", "v1"):
                cur.execute(
                    "INSERT INTO training_modelversion (generator_id, name, adapter_path, checkpoint_sha256,"
                    " created_at) VALUES (%s, %s, '', '', now()) RETURNING id",
                    [generator_id, version],
                )
                mv.append(cur.fetchone()[0])
            cur.execute(
                "INSERT INTO annotation_campaign (name, modality, instructions, criteria, overlap, gold_ratio,"
                " lease_seconds, undo_seconds, created_at)"
                " VALUES (%s, 'image', 'Which image matches the prompt better?', %s, %s, 0, 600, 30, now())"
                " RETURNING id",
                [CAMPAIGN_NAME, CRITERIA, overlap],
            )
            campaign_id = cur.fetchone()[0]
            cur.execute(
                "INSERT INTO annotation_membership (campaign_id, user_id, role)"
                " SELECT %s, g, 'annotator' FROM generate_series(1, %s) g",
                [campaign_id, N],
            )
            rounds = {}
            for number, status in ((1, "closed"), (2, "open")):
                cur.execute(
                    "INSERT INTO annotation_round (campaign_id, number, status, samples_per_prompt, source,"
                    " progress_done, progress_total, created_at)"
                    " VALUES (%s, %s, %s, %s, 'bench.seed', 0, 0, now()) RETURNING id",
                    [campaign_id, number, status, SAMPLES_PER_PROMPT],
                )
                rounds[status] = cur.fetchone()[0]
                for m in mv:
                    cur.execute(
                        "INSERT INTO annotation_round_model_versions (round_id, modelversion_id) VALUES (%s, %s)",
                        [rounds[status], m],
                    )

        base = {"prompt": 0, "sample": 0, "comparison": 0, "overlap": overlap}
        with phase(f"history round: prompts, samples, {history_comparisons} comparisons"):
            h_prompts, h_samples = seed_round(
                cur, round_id=rounds["closed"], comparisons=history_comparisons, base=base, mv=mv, judgments=J
            )
        history_c0 = 0
        with phase(f"open round: prompts, samples, {args.open_comparisons} comparisons"):
            o_prompts, o_samples = seed_round(
                cur, round_id=rounds["open"], comparisons=args.open_comparisons, base=base, mv=mv
            )

        # Judgment g (0-based) is of comparison g / overlap by annotator g mod N: the `overlap`
        # judgments of one comparison are consecutive g, so their annotators are distinct (N >= overlap).
        params = {
            "nj": J,
            "n": N,
            "ov": overlap,
            "c0": history_c0,
            "round": rounds["closed"],
            "crit": json.dumps(CRITERIA),
        }
        with phase(f"{J} done assignments"):
            cur.execute(
                """
                INSERT INTO annotation_assignment (id, comparison_id, round_id, annotator_id, status, swapped,
                                                   created_at, expires_at)
                SELECT g + 1, %(c0)s + 1 + g / %(ov)s, %(round)s, 1 + g %% %(n)s, 'done', (g * 7919) %% 2 = 1,
                       now() - make_interval(secs => (%(nj)s - g) * 2.0),
                       now() - make_interval(secs => (%(nj)s - g) * 2.0) + interval '600 seconds'
                FROM generate_series(0::bigint, %(nj)s - 1) g
                """,
                params,
            )
        with phase(f"{J} judgments"):
            cur.execute(
                """
                INSERT INTO annotation_judgment (id, comparison_id, assignment_id, annotator_id, choice, criteria,
                                                 left_sample_id, time_on_task_ms, idempotency_key, created_at)
                SELECT a.id, a.comparison_id, a.id, a.annotator_id,
                       (ARRAY['first','second','tie','both_bad'])[1 + (a.id * 31) %% 4],
                       jsonb_build_object('prompt_alignment', (ARRAY['first','second','tie'])[1 + (a.id * 17) %% 3],
                                          'visual_quality', (ARRAY['first','second','tie'])[1 + (a.id * 13) %% 3]),
                       CASE WHEN a.swapped THEN c.sample_second_id ELSE c.sample_first_id END,
                       800 + (a.id * 104729) %% 4000, gen_random_uuid(), a.created_at + interval '2 seconds'
                FROM annotation_assignment a JOIN annotation_comparison c ON c.id = a.comparison_id
                WHERE a.round_id = %(round)s
                """,
                params,
            )
        with phase(f"re-add and validate {len(foreign_keys)} foreign keys"):
            for table, con, definition in foreign_keys:
                cur.execute(
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} " + definition).format(  # definition from pg_catalog
                        sql.Identifier(table), sql.Identifier(con)
                    )
                )
        with phase("round progress"):
            cur.execute(
                "UPDATE annotation_round SET progress_done = %s, progress_total = %s WHERE id = %s",
                [J, J, rounds["closed"]],
            )
        with phase("sequences"):
            for table in (
                "auth_user",
                "annotation_prompt",
                "annotation_sample",
                "annotation_comparison",
                "annotation_assignment",
                "annotation_judgment",
            ):
                cur.execute(
                    sql.SQL("SELECT setval(pg_get_serial_sequence({t}, 'id'), (SELECT max(id) FROM {i}))").format(
                        t=sql.Literal(table), i=sql.Identifier(table)
                    )
                )
        with phase("commit"):
            conn.commit()
    conn.close()

    with phase("vacuum analyze"), psycopg.connect(f"{PG_SERVER}/{name}", autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")

    summary = {
        "database": name,
        "annotators": N,
        "usernames": f"{USERNAME_PREFIX}0..{USERNAME_PREFIX}{N - 1}",
        "password": PASSWORD,
        "campaign_id": campaign_id,
        "criteria": CRITERIA,
        "overlap": overlap,
        "history_round_id": rounds["closed"],
        "open_round_id": rounds["open"],
        "judgments": J,
        "assignments": J,
        "comparisons": {"history": history_comparisons, "open": args.open_comparisons},
        "prompts": h_prompts + o_prompts,
        "samples": h_samples + o_samples,
        "phases_s": phase.times,
        "elapsed_s": round(time.perf_counter() - started, 2),
    }
    print(f"Done in {summary['elapsed_s']:.1f} s; log in as {USERNAME_PREFIX}0 / {PASSWORD}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
