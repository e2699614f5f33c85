"""Simulated annotators acting through the site's real HTTP endpoints, as the browser does.

Each one logs in at /login/, asks for its next pair (`Accept: application/json`), judges it with
`training.shapes.raters` from the samples' stored verifier scores and quality, and posts the
judgment with an idempotency key. Used by the demo, the end-to-end tests and the benchmarks.
"""

import http.client
import json
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

from annotation.models import Sample
from training.shapes.raters import RaterConfig, rater_choice, utility

_ON_SCREEN = {"first": "left", "second": "right", "tie": "tie", "both_bad": "both_bad"}
_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class HttpError(RuntimeError):
    pass


class Browserless:
    """A tiny keep-alive HTTP client with a cookie jar and Django's CSRF handling."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("simulated annotators only talk to a site on this machine")
        self.host, self.port, self.timeout = parts.hostname, parts.port or 80, timeout
        self.cookies: dict[str, str] = {}
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: dict | None = None, accept: str = "application/json"):
        headers = {"Accept": accept, "Host": f"{self.host}:{self.port}", "Referer": f"http://{self.host}:{self.port}/"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = None
        if body is not None:
            data = urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            if "csrftoken" in self.cookies:
                headers["X-CSRFToken"] = self.cookies["csrftoken"]
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                payload = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt:
                    raise
        for header in response.headers.get_all("Set-Cookie") or []:
            for key, morsel in SimpleCookie(header).items():
                self.cookies[key] = morsel.value
        return response.status, payload

    def login(self, username: str, password: str) -> None:
        status, page = self.request("GET", "/login/", accept="text/html")
        match = _CSRF_INPUT.search(page.decode())
        if status != 200 or not match:
            raise HttpError(f"login page answered {status}")
        status, _ = self.request(
            "POST", "/login/", {"username": username, "password": password, "csrfmiddlewaretoken": match.group(1)}
        )
        if status != 302 or "sessionid" not in self.cookies:
            raise HttpError(f"login as {username} failed ({status})")


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
