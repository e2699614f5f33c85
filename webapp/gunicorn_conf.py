"""gunicorn settings shared by the demo, the benchmarks and deployments (`-c python:webapp.gunicorn_conf`).

Threads of a gthread worker that wake up from database or Redis I/O must take the GIL back from a
thread that is running Python; CPython hands it over every `switchinterval` (5 ms by default),
which shows up directly in tail latency. A shorter interval trades a little throughput for it.
"""

import os
import sys

_SWITCH_INTERVAL = float(os.environ.get("LOUPE_GIL_SWITCH_INTERVAL", "0.001"))


def post_fork(server, worker):  # gunicorn hook, runs in each worker
    sys.setswitchinterval(_SWITCH_INTERVAL)
