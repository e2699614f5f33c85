"""Thin Celery tasks: take ids, call one service, nothing else."""

from workers.celery import app


@app.task(name="annotation.leases_expire")
def leases_expire() -> int:
    """Free the slots of leases that expired (also done lazily on every claim)."""
    from annotation.services.leases import assignment_expire_stale

    return assignment_expire_stale()


@app.task(name="annotation.ping")
def ping(value: str) -> str:
    """Round-trip check used by the health page and the integration tests."""
    return value
