"""Export benchmark over HTTP: `python -m bench.export --judgments 1000000 --json`.

Uses the database `bench.seed` fills (default `loupe_bench`; seeded here if it does not exist,
reseeded only with --reseed), adds a researcher account `bench-researcher` to campaign "bench",
starts gunicorn (webapp.wsgi, 127.0.0.1, DEBUG off, one sync worker by default) and, logged in as
that researcher, downloads `/campaigns/<id>/export.<fmt>` streamed, counting bytes:

- raw Parquet and raw JSONL (one row per judgment): the targets, in judgment rows per second;
- per-comparison Parquet and JSONL (unless --no-aggregated): rows per second and judgments covered.

While a download runs, a thread samples the RSS of the gunicorn workers every 50 ms: the reported
growth is the peak minus the RSS just before the request. CPU seconds of the worker and of the
PostgreSQL backends are reported too (steadier than wall time on a shared machine). Rows are
checked: the Parquet file's footer and the JSONL line count must equal the database's counts.
Prints a table; the last line is one JSON object.
"""

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time

import psutil
import psycopg

from bench import (
    BASE_DIR,
    CAMPAIGN_NAME,
    DEFAULT_DATABASE,
    OUT_DIR,
    PASSWORD,
    PG_SERVER,
    check_database_name,
    django_env,
)

RESEARCHER = "bench-researcher"
TARGETS = {"parquet_rows_per_s": 200_000, "jsonl_rows_per_s": 100_000, "rss_growth_mb": 300}
_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_CHUNK = 1024 * 1024


# ---------------------------------------------------------------- database


def _counts(name: str) -> tuple[int, int, int] | None:
    """(campaign id, judgments, judged comparisons) of campaign "bench", or None if there is none."""
    try:
        conn = psycopg.connect(f"{PG_SERVER}/{name}", autocommit=True)
    except psycopg.OperationalError:
        return None
    with conn:
        row = conn.execute("SELECT id FROM annotation_campaign WHERE name = %s", [CAMPAIGN_NAME]).fetchone()
        if row is None:
            return None
        judgments, comparisons = conn.execute(
            "SELECT count(*), count(DISTINCT j.comparison_id) FROM annotation_judgment j"
            " JOIN annotation_comparison c ON c.id = j.comparison_id"
            " JOIN annotation_round r ON r.id = c.round_id WHERE r.campaign_id = %s",
            [row[0]],
        ).fetchone()
    return row[0], judgments, comparisons


def ensure_seeded(name: str, judgments: int, reseed: bool) -> tuple[int, int, int]:
    counts = _counts(name)
    if counts is None or reseed:
        from bench import seed

        print(f"seeding {name} with {judgments} judgments (bench.seed)", flush=True)
        seed.main(["--database", name, "--judgments", str(judgments), "--open-comparisons", "1000", "--reset"])
        counts = _counts(name)
    elif counts[1] < judgments:
        raise SystemExit(
            f"{name} holds {counts[1]} judgments of campaign {CAMPAIGN_NAME!r}, fewer than {judgments};"
            " pass --reseed to drop and refill it (or --database another_bench)"
        )
    return counts


def ensure_researcher(name: str) -> None:
    """A researcher of campaign "bench" (the export is for researchers), through Django's ORM."""
    code = (
        "from django.contrib.auth import get_user_model;"
        "from annotation.models import Campaign, Membership;"
        f"u, _ = get_user_model().objects.get_or_create(username={RESEARCHER!r});"
        f"u.set_password({PASSWORD!r}); u.save();"
        f"c = Campaign.objects.get(name={CAMPAIGN_NAME!r});"
        "Membership.objects.update_or_create(campaign=c, user=u, defaults={'role': 'researcher'})"
    )
    env = {**os.environ, **django_env(name)}
    subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=BASE_DIR, env=env, check=True)


# ---------------------------------------------------------------- server


def start_gunicorn(port: int, workers: int, env: dict[str, str]):
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    log = open(OUT_DIR / "gunicorn-export.log", "w")  # noqa: SIM115 - closed by the caller
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "webapp.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--timeout",
        "600",  # a full export is one long request
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


class RssSampler:
    """Peak RSS of the gunicorn workers, sampled every `interval` seconds in a thread."""

    def __init__(self, master_pid: int, interval: float = 0.05) -> None:
        self.master = psutil.Process(master_pid)
        self.interval = interval
        self.baseline: dict[int, int] = {}
        self.peak: dict[int, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _rss(self) -> dict[int, int]:
        out = {}
        for child in self.master.children():
            with contextlib.suppress(psutil.NoSuchProcess):
                out[child.pid] = child.memory_info().rss
        return out

    def __enter__(self) -> "RssSampler":
        self.baseline = self._rss()
        self.peak = dict(self.baseline)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid, rss in self._rss().items():
                self.peak[pid] = max(self.peak.get(pid, 0), rss)
            self.samples += 1
            self._stop.wait(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    @property
    def growth_mb(self) -> float:
        return max((peak - self.baseline.get(pid, peak)) / 2**20 for pid, peak in self.peak.items())

    @property
    def peak_mb(self) -> float:
        return max(self.peak.values()) / 2**20


def _cpu(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return out


def _cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(max(0.0, t - before.get(pid, 0.0)) for pid, t in after.items())


def _backends(name: str) -> list[int]:
    with psycopg.connect(f"{PG_SERVER}/{name}", autocommit=True) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'"
                " AND pid <> pg_backend_pid()",
                [name],
            )
        ]


# ---------------------------------------------------------------- client


def login(session, base_url: str) -> None:
    page = session.get(f"{base_url}/login/", timeout=30)
    match = _CSRF_INPUT.search(page.text)
    if page.status_code != 200 or not match:
        raise SystemExit(f"login page answered {page.status_code}")
    response = session.post(
        f"{base_url}/login/",
        data={"username": RESEARCHER, "password": PASSWORD, "csrfmiddlewaretoken": match.group(1)},
        headers={"Referer": f"{base_url}/login/"},
        allow_redirects=False,
        timeout=30,
    )
    if response.status_code != 302 or "sessionid" not in session.cookies:
        raise SystemExit(f"login as {RESEARCHER} failed ({response.status_code})")


def download(session, url: str, *, master: int, database: str, keep_as=None) -> dict:
    import pyarrow.parquet as pq

    lines = size = 0
    workers = [c.pid for c in psutil.Process(master).children()]
    sink = open(keep_as, "wb") if keep_as else None  # noqa: SIM115 - closed below
    with RssSampler(master) as rss:
        cpu_server, cpu_pg = _cpu(workers), _cpu(_backends(database))
        started = time.perf_counter()
        first_byte = None
        with session.get(url, stream=True, timeout=600) as response:
            if response.status_code != 200:
                raise SystemExit(f"GET {url} answered {response.status_code}: {response.text[:300]}")
            content_type = response.headers.get("Content-Type")
            for chunk in response.iter_content(_CHUNK):
                if first_byte is None:
                    first_byte = time.perf_counter() - started
                size += len(chunk)
                lines += chunk.count(b"\n")
                if sink:
                    sink.write(chunk)
        elapsed = time.perf_counter() - started
        cpu_server = _cpu_used(cpu_server, _cpu(workers))
        cpu_pg = _cpu_used(cpu_pg, _cpu(_backends(database)))
    if sink:
        sink.close()
    rows = pq.ParquetFile(keep_as).metadata.num_rows if keep_as else lines
    return {
        "rows": rows,
        "bytes": size,
        "seconds": round(elapsed, 3),
        "first_byte_s": round(first_byte or 0.0, 3),
        "rows_per_s": round(rows / elapsed),
        "mb_per_s": round(size / 2**20 / elapsed, 1),
        "rss_growth_mb": round(rss.growth_mb, 1),
        "rss_peak_mb": round(rss.peak_mb, 1),
        "rss_samples": rss.samples,
        "cpu_s_gunicorn": round(cpu_server, 2),
        "cpu_s_postgres": round(cpu_pg, 2),
        "content_type": content_type,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--judgments", type=int, default=1_000_000, help="judgments the campaign must hold")
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--reseed", action="store_true", help="drop and refill the database first")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn sync workers (default 1)")
    parser.add_argument("--port", type=int, default=8124)
    parser.add_argument("--no-aggregated", action="store_true", help="only the raw (per-judgment) exports")
    parser.add_argument("--json", action="store_true", help="end with one JSON line (always printed last)")
    args = parser.parse_args(argv)
    name = check_database_name(args.database)
    import requests

    campaign_id, n_judgments, n_comparisons = ensure_seeded(name, args.judgments, args.reseed)
    ensure_researcher(name)
    cores = os.cpu_count() or 1
    print(f"campaign {campaign_id}: {n_judgments} judgments on {n_comparisons} comparisons; {cores} cores", flush=True)

    env = {**os.environ, **django_env(name)}
    from bench.annotation_load import _collectstatic, stop_gunicorn, wait_ready

    _collectstatic(env)
    proc, log = start_gunicorn(args.port, args.workers, env)
    base_url = f"http://127.0.0.1:{args.port}"
    runs = [("parquet", True), ("jsonl", True)]
    if not args.no_aggregated:
        runs += [("parquet", False), ("jsonl", False)]
    results: dict[str, dict] = {}
    try:
        wait_ready(proc, base_url)
        session = requests.Session()
        login(session, base_url)
        for fmt, raw in runs:
            key = f"{fmt}_{'raw' if raw else 'comparisons'}"
            url = f"{base_url}/campaigns/{campaign_id}/export.{fmt}?raw={'true' if raw else 'false'}"
            keep = OUT_DIR / f"export-{key}.parquet" if fmt == "parquet" else None
            print(f"  GET {url} ...", end="", flush=True)
            results[key] = download(session, url, master=proc.pid, database=name, keep_as=keep)
            if keep:
                keep.unlink()
            expected = n_judgments if raw else n_comparisons
            results[key]["rows_expected"] = expected
            results[key]["judgments_per_s"] = round(n_judgments / results[key]["seconds"])
            print(f" {results[key]['seconds']:.2f} s", flush=True)
            if results[key]["rows"] != expected:
                raise SystemExit(f"{key}: {results[key]['rows']} rows, expected {expected}")
    finally:
        stop_gunicorn(proc)
        log.close()

    raw_parquet, raw_jsonl = results["parquet_raw"], results["jsonl_raw"]
    rss_growth = max(r["rss_growth_mb"] for r in results.values())
    targets = {
        f"parquet_raw_rows_per_s>={TARGETS['parquet_rows_per_s']}": raw_parquet["rows_per_s"]
        >= TARGETS["parquet_rows_per_s"],
        f"jsonl_raw_rows_per_s>={TARGETS['jsonl_rows_per_s']}": raw_jsonl["rows_per_s"] >= TARGETS["jsonl_rows_per_s"],
        f"rss_growth_mb<={TARGETS['rss_growth_mb']}": rss_growth <= TARGETS["rss_growth_mb"],
    }
    print()
    print(f"Export over HTTP: campaign {campaign_id}, {n_judgments} judgments, gunicorn {args.workers} sync worker(s)")
    header = f"{'export':22} {'rows':>9} {'MB':>8} {'s':>7} {'rows/s':>9} {'judg/s':>9} {'1st B s':>8}"
    print(header + f" {'RSS+ MB':>8} {'RSS MB':>7} {'cpu web':>8} {'cpu pg':>7}")
    for key, r in results.items():
        print(
            f"{key:22} {r['rows']:9d} {r['bytes'] / 2**20:8.1f} {r['seconds']:7.2f} {r['rows_per_s']:9d}"
            f" {r['judgments_per_s']:9d} {r['first_byte_s']:8.2f} {r['rss_growth_mb']:8.1f} {r['rss_peak_mb']:7.1f}"
            f" {r['cpu_s_gunicorn']:8.2f} {r['cpu_s_postgres']:7.2f}"
        )
    print("targets: " + ", ".join(f"{k} {'OK' if v else 'MISSED'}" for k, v in targets.items()))
    load = os.getloadavg()
    summary = {
        "database": name,
        "campaign_id": campaign_id,
        "judgments": n_judgments,
        "comparisons": n_comparisons,
        "cores": cores,
        "loadavg_1m_after": round(load[0], 2),
        "gunicorn_workers": args.workers,
        "parquet_raw_rows_per_s": raw_parquet["rows_per_s"],
        "jsonl_raw_rows_per_s": raw_jsonl["rows_per_s"],
        "rss_growth_mb_max": rss_growth,
        "runs": results,
        "targets": targets,
    }
    print(json.dumps(summary))
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
