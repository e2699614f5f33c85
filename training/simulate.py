"""Simulated annotators acting through the site's real HTTP endpoints, as the browser does.

Each one logs in at /login/, asks for its next pair (`Accept: application/json`), judges it with
`training.shapes.raters` from the samples' stored verifier scores and quality, and posts the
judgment with an idempotency key. Used by the demo, the end-to-end tests and the benchmarks.
"""

import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

from annotation.models import Sample
from training.httpclient import Browserless, HttpError
from training.shapes.raters import RaterConfig, rater_choice, utility

_ON_SCREEN = {"first": "left", "second": "right", "tie": "tie", "both_bad": "both_bad"}


@dataclass
class SimulationStats:
    judgments: int = 0
    skipped_empty: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def per_second(self) -> float:
        return self.judgments / self.seconds if self.seconds else 0.0


class _Utilities:
    """Verifier score + quality per sample, read once from the database."""

    def __init__(self, config: RaterConfig) -> None:
        self.config, self.cache, self.lock = config, {}, threading.Lock()

    def __call__(self, sample_id: int) -> float:
        with self.lock:
            if sample_id not in self.cache:
                row = Sample.objects.filter(id=sample_id).values("verifier_score", "settings").first() or {}
                quality = (row.get("settings") or {}).get("quality")
                self.cache[sample_id] = utility(row.get("verifier_score"), quality, self.config)
            return self.cache[sample_id]


def run_annotator(
    *,
    base_url: str,
    username: str,
    password: str,
    round_id: int,
    config: RaterConfig,
    seed: int,
    deadline: float,
    stats: SimulationStats,
    utilities: _Utilities,
) -> None:
    from django.db import connection

    rng = random.Random(seed)
    client = Browserless(base_url)
    try:
        client.login(username, password)
        while time.monotonic() < deadline:
            status, body = client.request("GET", f"/rounds/{round_id}/next/")
            if status == 204:
                with stats.lock:
                    stats.skipped_empty += 1
                return
            if status != 200:
                raise HttpError(f"next pair answered {status}: {body[:200]!r}")
            pair = json.loads(body)
            u_left, u_right = utilities(pair["left"]["sample_id"]), utilities(pair["right"]["sample_id"])
            choice = _ON_SCREEN[rater_choice(u_left, u_right, rng, config)]  # left is "first" to the rater
            form = {
                "choice": choice,
                "key": str(uuid.UUID(int=rng.getrandbits(128))),
                "time_ms": rng.randint(800, 4000),
            }
            status, body = client.request("POST", f"/assignments/{pair['assignment_id']}/judge/", form)
            if status not in (200, 201):
                raise HttpError(f"judge answered {status}: {body[:200]!r}")
            with stats.lock:
                stats.judgments += 1
    except Exception as exc:  # reported in the stats; one failing rater does not stop the others
        with stats.lock:
            stats.errors.append(f"{username}: {exc}")
    finally:
        connection.close()


def simulate(
    *, base_url: str, round_id: int, accounts: list[tuple[str, str]], config: RaterConfig, seconds: float, seed: int = 0
) -> SimulationStats:
    """Run one thread per account until `seconds` pass or the round has nothing left for them."""
    stats = SimulationStats()
    utilities = _Utilities(config)
    start = time.monotonic()
    deadline = start + seconds
    threads = [
        threading.Thread(
            target=run_annotator,
            kwargs={
                "base_url": base_url,
                "username": u,
                "password": p,
                "round_id": round_id,
                "config": config,
                "seed": seed * 1000 + i,
                "deadline": deadline,
                "stats": stats,
                "utilities": utilities,
            },
        )
        for i, (u, p) in enumerate(accounts)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats.seconds = time.monotonic() - start
    return stats
