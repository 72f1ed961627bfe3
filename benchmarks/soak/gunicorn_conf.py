"""gunicorn settings for the soak: ``gunicorn -c benchmarks/soak/gunicorn_conf.py``.

Two sync workers forked from a preloaded master (the app, its vendor clients and
``sentry_sdk.init`` are built once, before the fork), with the README's post-fork steps in
``post_fork``. Binds 127.0.0.1 on a port the kernel picks; ``when_ready`` writes it to
``$SOAK_REPORT_DIR/port`` for the soak to read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

wsgi_app = "benchmarks.soak.app:app"
bind = os.environ.get("SOAK_BIND", "127.0.0.1:0")
workers = 2
worker_class = "sync"
preload_app = True
timeout = 30  # a worker stuck this long on one request is killed (and the soak fails)
graceful_timeout = 45  # room for each worker's flush and vendor close on SIGTERM
accesslog = None
loglevel = "info"


def when_ready(server: Any) -> None:
    port = server.LISTENERS[0].sock.getsockname()[1]
    (Path(os.environ["SOAK_REPORT_DIR"]) / "port").write_text(str(port))


def post_fork(server: Any, worker: Any) -> None:
    from benchmarks.soak.app import VENDORS, worker_started

    # The README's "Forking servers" steps, for clients built in the master:
    VENDORS.launchdarkly.postfork()  # LaunchDarkly's own post-fork call
    VENDORS.split_factory.resume()  # Split: built with preforkedInitialization
    VENDORS.split_factory.block_until_ready(5)
    # Segment: nothing to call; sentry-flags restarts the client's consumer thread.
    worker_started()


def worker_exit(server: Any, worker: Any) -> None:
    # gunicorn also calls this in the master for a worker that was already gone.
    if os.getpid() != worker.pid:
        return
    from benchmarks.soak.app import worker_exiting

    worker_exiting()
