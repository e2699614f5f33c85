"""Benchmarks. Shared here: `say` (progress on stderr, so that stdout keeps each benchmark's result
line) and the load benchmark's settings.

Load benchmark of the annotation hot path: a bulk seeder and an HTTP load driver.

Both work on their own PostgreSQL database (default `loupe_bench`), never the development or test
one. `bench.seed` fills it; `bench.annotation_load` runs gunicorn against it and drives simulated
annotators over HTTP. See bench/README.md.
"""

import os
import re
import secrets
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
OUT_DIR = BASE_DIR / "bench" / "out"  # git-ignored: collected static files, gunicorn log

DEFAULT_DATABASE = "loupe_bench"
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
# Sessions of the benchmark live in their own Redis database, away from the dev/test one.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"

USERNAME_PREFIX = "bench-"
PASSWORD = "bench-annotator-pw-7f3a"  # known on purpose: a throwaway database on this machine
CAMPAIGN_NAME = "bench"


def add_options(parser, options: dict[str, tuple[object, type, str]]) -> None:
    """``--name-with-dashes`` arguments from a benchmark's ``{name: (default, type, help)}`` table."""
    for name, (default, kind, text) in options.items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=default, help=text)


def option(args, options: dict[str, tuple[object, type, str]], name: str):
    """``name`` from an argparse namespace or a dict, its table default where missing or None."""
    value = args.get(name) if isinstance(args, dict) else getattr(args, name, None)
    return options[name][0] if value is None else value


def say(line: str) -> None:
    """A progress line on stderr; stdout keeps the result."""
    print(line, file=sys.stderr, flush=True)


def say_every(n: int, describe):
    """A trainer's ``on_step`` that says ``describe(info)`` every ``n`` steps and at the last one."""

    def on_step(info) -> None:
        if info.step % n == 0 or info.step == info.total:
            say(describe(info))

    return on_step


_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_database_name(name: str) -> str:
    """Only names that say they are a benchmark database: the dev or test one is never touched."""
    if not _NAME.match(name) or "bench" not in name or name.startswith("test"):
        raise SystemExit(f"refusing database {name!r}: use a name containing 'bench' (e.g. {DEFAULT_DATABASE})")
    return name


def database_url(name: str) -> str:
    return f"{PG_SERVER}/{check_database_name(name)}"


def django_env(database: str, *, redis_url: str = DEFAULT_REDIS_URL) -> dict[str, str]:
    """Environment for Django (in this process or gunicorn): bench DB, DEBUG off, plain HTTP on localhost."""
    env = {
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "DATABASE_URL": database_url(database),
        "DJANGO_SECRET_KEY": os.environ.get("BENCH_SECRET_KEY") or secrets.token_urlsafe(50),
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_SECURE_COOKIES": "false",
        "DJANGO_HSTS_SECONDS": "0",
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "STATIC_ROOT": str(OUT_DIR / "static"),
        "LOG_LEVEL": "WARNING",
    }
    return env


def setup_django(database: str, **kwargs) -> None:
    """Point this process at the bench database, then django.setup()."""
    os.environ.update(django_env(database, **kwargs))
    import django

    django.setup()
