"""Thin Celery tasks: take ids, call one service or runner, nothing else.

`training.runners` is imported inside the task body, so the web process (which imports this module
to enqueue) never loads torch.
"""

from workers.celery import app


@app.task(name="annotation.leases_expire")
def leases_expire() -> int:
    """Free the slots of leases that expired (also done lazily on every claim)."""
    from annotation.services.leases import assignment_expire_stale

    return assignment_expire_stale()


@app.task(name="generation.round_generate", queue="gpu", acks_late=False)
def round_generate(job_id: int) -> str:
    """Generate the samples and comparisons of a round (gpu queue; runs on CPU where there is no GPU)."""
    from training import runners

    return runners.generation_run(job_id)
