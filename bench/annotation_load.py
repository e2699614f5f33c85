"""HTTP load on the annotation hot path: `python -m bench.annotation_load --annotators 32 --seconds 60 --json`.

Starts gunicorn (webapp.wsgi, 127.0.0.1 only, DEBUG off) on the database `bench.seed` filled,
then runs one client PROCESS per annotator, each with its own keep-alive HTTP client logged in over
/login/, looping: GET the next pair (JSON) -> POST the judgment (random choice and criteria, a
random idempotency key, time_ms); 2% of submits are sent a second time with the same key and must
answer 2xx with created=false and the same judgment. After a warm-up, requests started inside the
measured window count. The parent then reports judgments/s (from the database: judgments created in
the window), latency percentiles, errors, and integrity checks in SQL. Its last line is one JSON object.
"""

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import signal
import subprocess
import sys
import time
import traceback
import uuid

import psycopg

from bench import (
    BASE_DIR,
    CAMPAIGN_NAME,
    DEFAULT_DATABASE,
    DEFAULT_REDIS_URL,
    OUT_DIR,
    PASSWORD,
    PG_SERVER,
    USERNAME_PREFIX,
    check_database_name,
    django_env,
)

VIEW_CHOICES = ("left", "right", "tie", "both_bad")
DOUBLE_SUBMIT_RATE = 0.02
_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


# ---------------------------------------------------------------- client process (no Django here)


def _client(
    index: int, base_url: str, round_id: int, go, times, results, seed: int, state: dict, think_ms: float = 0.0
):
    """One annotator. Puts ("ready", ...) after login, waits for `go`, runs until times[1], puts its records."""
    from training.httpclient import Browserless  # keep-alive http.client: little client CPU per request

    rng = random.Random(seed)
    records: list[tuple[str, float, float, int]] = []  # (kind, wall start, latency ms, status)
    errors: list[str] = []
    counts = {"judged": 0, "repeats": 0, "empty": 0}
    client = Browserless(base_url)
    username = f"{USERNAME_PREFIX}{index}"

    def call(kind: str, method: str, path: str, body: dict | None = None):
        started_wall = time.time()
        t0 = time.perf_counter()
        try:
            status, payload = client.request(method, path, body)
        except Exception as exc:  # counted as an error of this request, the loop goes on
            records.append((kind, started_wall, (time.perf_counter() - t0) * 1000, 0))
            errors.append(f"{username} {kind}: {type(exc).__name__}: {exc}"[:300])
            return None, b""
        records.append((kind, started_wall, (time.perf_counter() - t0) * 1000, status))
        return status, payload

    try:
        client.login(username, PASSWORD)
    except Exception as exc:
        state["ready"] = True
        results.put(("ready", index, f"{username} login: {exc}"))
        results.put(("done", index, [], [], counts))
        return
    state["ready"] = True
    results.put(("ready", index, None))
    go.wait()
    t_end = times[1]  # written by the parent before `go` is set

    def unexpected(kind: str, status: int, payload: bytes) -> None:
        errors.append(f"{username} {kind}: HTTP {status} {payload[:200]!r}")

    while time.time() < t_end:
        status, payload = call("next", "GET", f"/rounds/{round_id}/next/")
        if status is None:
            continue
        if status == 204:  # nothing left for this annotator: the seed is used up
            counts["empty"] += 1
            errors.append(f"{username} next: 204, round exhausted")
            break
        if status != 200:
            unexpected("next", status, payload)
            continue
        pair = json.loads(payload)
        form = {
            "choice": rng.choice(VIEW_CHOICES),
            "key": str(uuid.uuid4()),  # from os.urandom: never one of an earlier run's keys
            "time_ms": rng.randint(800, 4000),
        }
        for criterion in pair.get("criteria", []):
            form[f"criteria.{criterion['key']}"] = rng.choice(VIEW_CHOICES[:3])
        path = f"/assignments/{pair['assignment_id']}/judge/"
        if think_ms:
            time.sleep(rng.uniform(0, 2 * think_ms) / 1000)
        status, payload = call("submit", "POST", path, form)
        if status is None:
            continue
        if status != 201:
            unexpected("submit", status, payload)
            continue
        counts["judged"] += 1
        first = json.loads(payload)
        if rng.random() < DOUBLE_SUBMIT_RATE:
            counts["repeats"] += 1
            status, payload = call("repeat", "POST", path, form)
            if status is None:
                continue
            if status not in (200, 201):
                unexpected("repeat", status, payload)
            else:
                body = json.loads(payload)
                if body.get("created") or body.get("judgment_id") != first.get("judgment_id"):
                    errors.append(f"{username} repeat: not idempotent: first {first} then {body}")
    results.put(("done", index, records, errors, counts))


# ---------------------------------------------------------------- server


def _collectstatic(env: dict[str, str]) -> None:
    """The login page needs the static manifest (DEBUG off); build it once into bench/out/static."""
    if (OUT_DIR / "static" / "staticfiles.json").exists():
        return
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=BASE_DIR, env=env, check=True
    )


def start_gunicorn(args, env: dict[str, str]) -> tuple[subprocess.Popen, object]:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    log = open(OUT_DIR / "gunicorn.log", "w")  # noqa: SIM115 - closed by stop_gunicorn's caller
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "webapp.wsgi:application",
        "--config",
        "python:webapp.gunicorn_conf",
        "--bind",
        f"127.0.0.1:{args.port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        args.worker_class,
        "--threads",
        str(args.threads),
        "--keep-alive",
        "5",
        "--backlog",
        "2048",
        "--timeout",
        "60",
        "--graceful-timeout",
        "10",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def wait_ready(proc: subprocess.Popen, base_url: str, timeout: float = 60.0) -> None:
    import requests

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}; see {OUT_DIR / 'gunicorn.log'}")
        try:
            if requests.get(f"{base_url}/login/", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer within {timeout:.0f} s; see {OUT_DIR / 'gunicorn.log'}")


def stop_gunicorn(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # graceful: workers finish their request
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (all its threads), from /proc; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def cpu_snapshot(master: int, database: str, clients: list[int]) -> dict[str, dict[int, float]]:
    """CPU seconds so far of gunicorn (master + workers), the bench DB's PostgreSQL backends, the clients."""
    with psycopg.connect(f"{PG_SERVER}/{database}", autocommit=True) as conn:
        backends = [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'"
                " AND pid <> pg_backend_pid()",
                [database],
            )
        ]
    return {
        "gunicorn": {pid: _cpu_seconds(pid) for pid in [master, *_children(master)]},
        "postgres": {pid: _cpu_seconds(pid) for pid in backends},
        "clients": {pid: _cpu_seconds(pid) for pid in clients},
    }


def cpu_used(before: dict, after: dict) -> dict[str, float]:
    return {group: sum(max(0.0, t - before[group].get(pid, 0.0)) for pid, t in after[group].items()) for group in after}


# ---------------------------------------------------------------- database


def _bench_round(conn) -> tuple[int, int]:
    row = conn.execute(
        "SELECT r.id, c.overlap FROM annotation_round r JOIN annotation_campaign c ON c.id = r.campaign_id"
        " WHERE c.name = %s AND r.status = 'open' ORDER BY r.id DESC LIMIT 1",
        [CAMPAIGN_NAME],
    ).fetchone()
    if row is None:
        raise SystemExit("no open bench round: run `python -m bench.seed` first")
    return row


INTEGRITY_SQL = {
    # The unique constraint forbids these; counted anyway, over the whole database.
    "duplicate_judgments": """
        SELECT count(*) FROM (SELECT 1 FROM annotation_judgment
                              GROUP BY comparison_id, annotator_id HAVING count(*) > 1) d""",
    "comparisons_judgments_over_overlap": """
        SELECT count(*) FROM annotation_comparison c
        JOIN (SELECT comparison_id, count(*) AS n FROM annotation_judgment GROUP BY comparison_id) j
          ON j.comparison_id = c.id
        WHERE j.n > c.overlap""",
    "comparisons_assignments_over_overlap": """
        SELECT count(*) FROM annotation_comparison c
        JOIN (SELECT comparison_id, count(*) AS n FROM annotation_assignment
              WHERE status IN ('live', 'done') GROUP BY comparison_id) a ON a.comparison_id = c.id
        WHERE a.n > c.overlap""",
    # Counters against the rows they count (only comparisons with rows can drift).
    "judgment_count_mismatches": """
        SELECT count(*) FROM annotation_comparison c
        LEFT JOIN (SELECT comparison_id, count(*) AS n FROM annotation_judgment GROUP BY comparison_id) j
          ON j.comparison_id = c.id
        WHERE c.judgment_count <> coalesce(j.n, 0)""",
    "slots_taken_mismatches": """
        SELECT count(*) FROM annotation_comparison c
        LEFT JOIN (SELECT comparison_id, count(*) AS n FROM annotation_assignment
                   WHERE status IN ('live', 'done') GROUP BY comparison_id) a ON a.comparison_id = c.id
        WHERE c.slots_taken <> coalesce(a.n, 0)""",
    "done_assignments_without_judgment": """
        SELECT count(*) FROM annotation_assignment a
        WHERE a.status = 'done' AND NOT EXISTS (SELECT 1 FROM annotation_judgment j WHERE j.assignment_id = a.id)""",
}


# ---------------------------------------------------------------- aggregation


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def latency_summary(values: list[float]) -> dict:
    values = sorted(values)

    def r(x):
        return None if x is None else round(x, 2)

    return {
        "count": len(values),
        "p50_ms": r(percentile(values, 0.50)),
        "p95_ms": r(percentile(values, 0.95)),
        "p99_ms": r(percentile(values, 0.99)),
        "max_ms": r(values[-1] if values else None),
        "mean_ms": r(sum(values) / len(values) if values else None),
    }


def main(argv: list[str] | None = None) -> int:
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--annotators", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window (default 60)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds run before measuring (default 5)")
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    # gthread, one worker per core, 8 threads: fastest of those tried on 2 cores (it keeps client
    # connections alive; sync workers close each one, and more processes only add contention).
    parser.add_argument("--workers", type=int, default=cores, help="gunicorn workers (default: one per core)")
    parser.add_argument("--worker-class", default="gthread", choices=("sync", "gthread"))
    parser.add_argument("--threads", type=int, default=8, help="threads per worker, gthread only (default 8)")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="sessions; not the dev Redis db")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="mean pause between seeing a pair and submitting (uniform 0..2x); 0 = back to back, saturating",
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line (always printed last)")
    args = parser.parse_args(argv)
    name = check_database_name(args.database)
    base_url = f"http://127.0.0.1:{args.port}"

    with psycopg.connect(f"{PG_SERVER}/{name}", autocommit=True) as conn:
        round_id, overlap = _bench_round(conn)
        users = conn.execute("SELECT count(*) FROM auth_user WHERE username LIKE %s", [USERNAME_PREFIX + "%"])
        n_users = users.fetchone()[0]
        free = conn.execute(
            "SELECT coalesce(sum(overlap - slots_taken), 0) FROM annotation_comparison WHERE round_id = %s",
            [round_id],
        ).fetchone()[0]
    if args.annotators > n_users:
        raise SystemExit(f"only {n_users} bench accounts; reseed with --annotators {args.annotators}")
    print(f"round {round_id}: {free} free slots; {args.annotators} annotators; {cores} cores", flush=True)

    env = {**os.environ, **django_env(name, redis_url=args.redis_url)}
    _collectstatic(env)
    proc, log = start_gunicorn(args, env)
    interrupted = False
    children: list[mp.Process] = []

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        wait_ready(proc, base_url)
        print(
            f"gunicorn up: {args.workers} x {args.worker_class} workers, {args.threads} thread(s)",
            flush=True,
        )
        ctx = mp.get_context("spawn")
        go, results = ctx.Event(), ctx.Queue()
        # Window boundaries are fixed after everyone is logged in; passed through a shared array.
        times = ctx.Array("d", 2)
        for i in range(args.annotators):
            p = ctx.Process(
                target=_client_entry,
                args=(i, base_url, round_id, go, times, results, args.seed * 10_000 + i, args.think_ms),
                daemon=True,
            )
            p.start()
            children.append(p)
        login_errors = []
        for _ in children:
            _, _, err = _get(results, "ready")
            if err:
                login_errors.append(err)
        cpu_before = cpu_snapshot(proc.pid, name, [p.pid for p in children])
        t_go = time.time()
        t_measure, t_end = t_go + args.warmup, t_go + args.warmup + args.seconds
        times[0], times[1] = t_measure, t_end
        go.set()
        print(f"{args.annotators - len(login_errors)} annotators logged in; running", flush=True)
        outcomes = [_get(results, "done", timeout=args.warmup + args.seconds + 120) for _ in children]
        cpu_after = cpu_snapshot(proc.pid, name, [p.pid for p in children])
        t_done = time.time()
        for p in children:
            p.join(timeout=10)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted; stopping", file=sys.stderr)
        for p in children:
            if p.is_alive():
                p.terminate()
        return 130
    finally:
        stop_gunicorn(proc)
        log.close()
        if interrupted:
            print("gunicorn stopped", file=sys.stderr)

    records = [rec for _, _, recs, _, _ in outcomes for rec in recs]
    errors = [e for _, _, _, errs, _ in outcomes for e in errs] + login_errors
    counts = {k: sum(o[4][k] for o in outcomes) for k in ("judged", "repeats", "empty")}
    window = [r for r in records if t_measure <= r[1] < t_end]
    lat = {k: latency_summary([r[2] for r in window if r[0] == k]) for k in ("next", "submit", "repeat")}
    lat["submit_all"] = latency_summary([r[2] for r in window if r[0] in ("submit", "repeat")])
    measured_errors = sum(1 for r in window if r[3] == 0 or r[3] >= 300 or (r[0] == "next" and r[3] == 204))
    client_created = sum(1 for r in window if r[0] == "submit" and r[3] == 201)

    with psycopg.connect(f"{PG_SERVER}/{name}", autocommit=True) as conn:
        db_judgments = conn.execute(
            "SELECT count(*) FROM annotation_judgment j JOIN annotation_comparison c ON c.id = j.comparison_id"
            " WHERE c.round_id = %s AND j.created_at >= to_timestamp(%s) AND j.created_at < to_timestamp(%s)",
            [round_id, t_measure, t_end],
        ).fetchone()[0]
        run_judgments = conn.execute(
            "SELECT count(*) FROM annotation_judgment j JOIN annotation_comparison c ON c.id = j.comparison_id"
            " WHERE c.round_id = %s AND j.created_at >= to_timestamp(%s)",
            [round_id, t_go],
        ).fetchone()[0]
        t0 = time.perf_counter()
        integrity = {key: conn.execute(q).fetchone()[0] for key, q in INTEGRITY_SQL.items()}
        integrity_s = time.perf_counter() - t0

    jps = db_judgments / args.seconds
    # CPU spent per judgment over the whole run (warm-up included) by the server, the database and
    # the clients: less noisy than throughput on a shared machine, and it bounds what 2 cores can do.
    cpu = cpu_used(cpu_before, cpu_after)
    cpu_per_judgment = {k: round(1000 * v / run_judgments, 2) if run_judgments else None for k, v in cpu.items()}
    targets = {
        "judgments_per_s>=300": jps >= 300,
        "next_p99<=50ms": (lat["next"]["p99_ms"] or 1e9) <= 50,
        "submit_p99<=50ms": (lat["submit_all"]["p99_ms"] or 1e9) <= 50,
        "errors==0": not errors,
        "integrity==0": not any(integrity.values()),
    }

    print()
    print(f"Annotation load: {args.annotators} annotators, {args.seconds:.0f} s measured after {args.warmup:.0f} s")
    print(f"gunicorn {args.workers} x {args.worker_class} (threads {args.threads}); {cores} cores")
    print(f"{'judgments/s (db, window)':32} {jps:10.1f}   ({db_judgments} stored; clients saw {client_created})")
    print(f"{'judgments in whole run':32} {run_judgments:10d}   (client 201s {counts['judged']})")
    print(f"{'double submits':32} {counts['repeats']:10d}")
    print(
        f"{'CPU ms / judgment':32} gunicorn {cpu_per_judgment['gunicorn']}, postgres"
        f" {cpu_per_judgment['postgres']}, clients {cpu_per_judgment['clients']}"
        f"  (run {t_done - t_go:.0f} s x {cores} cores; used {sum(cpu.values()):.0f} CPU s)"
    )
    print(f"{'request':12} {'count':>8} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    for key in ("next", "submit", "repeat", "submit_all"):
        s = lat[key]

        def f(x):
            return f"{x:9.1f}" if x is not None else f"{'-':>9}"

        print(f"{key:12} {s['count']:8d} {f(s['p50_ms'])} {f(s['p95_ms'])} {f(s['p99_ms'])} {f(s['max_ms'])}")
    print(f"{'errors (whole run)':32} {len(errors):10d}   (in window: {measured_errors})")
    for e in errors[:10]:
        print(f"   {e}")
    print(f"integrity ({integrity_s:.1f} s):")
    for key, value in integrity.items():
        print(f"   {key:40} {value}")
    print("targets: " + ", ".join(f"{k} {'OK' if v else 'MISSED'}" for k, v in targets.items()))

    result = {
        "judgments_per_s": round(jps, 1),
        "judgments_in_window_db": db_judgments,
        "judgments_in_window_clients": client_created,
        "judgments_whole_run_db": run_judgments,
        "double_submits": counts["repeats"],
        "cpu_ms_per_judgment": cpu_per_judgment,
        "cpu_s": {k: round(v, 1) for k, v in cpu.items()},
        "run_wall_s": round(t_done - t_go, 1),
        "next_pair": lat["next"],
        "submit": lat["submit_all"],
        "submit_first": lat["submit"],
        "submit_repeat": lat["repeat"],
        "errors": len(errors),
        "errors_in_window": measured_errors,
        "error_samples": errors[:5],
        "integrity": integrity,
        "targets_met": targets,
        "config": {
            "annotators": args.annotators,
            "think_ms": args.think_ms,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "gunicorn_workers": args.workers,
            "worker_class": args.worker_class,
            "threads": args.threads,
            "cores": cores,
            "database": name,
            "round_id": round_id,
            "overlap": overlap,
        },
    }
    if args.json:
        print(json.dumps(result))
    return 0 if all(targets.values()) else 1


def _get(queue, kind: str, timeout: float = 300.0):
    msg = queue.get(timeout=timeout)
    if msg[0] != kind:
        raise RuntimeError(f"expected {kind} message, got {msg[0]}")
    return msg


def _client_entry(index, base_url, round_id, go, times, results, seed, think_ms=0.0):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    state = {"ready": False}
    try:
        _client(index, base_url, round_id, go, times, results, seed, state, think_ms)
    except Exception:
        if not state["ready"]:
            results.put(("ready", index, f"client {index} crashed"))
        crash = f"client {index} crashed: {traceback.format_exc()[-500:]}"
        results.put(("done", index, [], [crash], {"judged": 0, "repeats": 0, "empty": 0}))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
