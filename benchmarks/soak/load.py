"""The soak's load generator, a process of its own: ``python -m benchmarks.soak.load PLAN OUT``.

``PLAN`` is a JSON file ``{"urls", "requests", "rate", "threads", "seed"}``; ``OUT`` receives
one JSON object per request. Every app in ``urls`` gets the same ``requests`` requests at
``rate`` a second, interleaved: the ``n``-th request of the plan goes to each app in turn,
``1 / (rate * len(urls))`` seconds apart, so whatever else runs on the machine slows them
alike. Open loop: each request is due at its time whatever the apps' latency, so a slow app
cannot slow the load down and hide its own tail (closed-loop generators wait for an answer
before asking again); each app has ``threads`` threads of its own, so a slow one cannot hold
up the other's requests either. Each request is a new connection with its own id in
``X-Soak-Request``; the latency is from ``connect()`` to the last byte read, and how late
the request left (all of that app's threads busy, or this process short of CPU) is
recorded next to it.

The mix: ``/checkout`` for 8 users in 3 orgs (always raises; the flag sends ``globex`` down
the new flow, the others down the old one), ``/resize`` (raises an error ``ignore_errors``
drops) and ``/healthz``.
"""

from __future__ import annotations

import http.client
import json
import random
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

REQUEST_HEADER = "X-Soak-Request"
WORKER_HEADER = "X-Soak-Worker"
TIMEOUT = 30.0  # a request that takes longer is recorded as failed
MIX = (("checkout", 0.55), ("resize", 0.15), ("healthz", 0.30))
USERS = [f"u-{n}" for n in range(1, 9)]
ORGS = ("acme", "globex", "initech")


@dataclass(frozen=True)
class Result:
    app: int  # index into the plan's urls
    rid: str
    kind: str  # checkout, resize, healthz
    status: int  # 0: no HTTP answer (see error)
    worker: int  # the pid in X-Soak-Worker, 0 when absent
    started: float  # seconds since the load started
    latency_ms: float
    late_ms: float  # how long after its due time the request left
    error: str = ""


def plan_paths(requests: int, seed: int) -> list[tuple[str, str]]:
    """(kind, path with query) for every request, reproducible from ``seed``."""
    rng = random.Random(seed)
    kinds = [kind for kind, _ in MIX]
    weights = [weight for _, weight in MIX]
    paths = []
    for _ in range(requests):
        kind = rng.choices(kinds, weights)[0]
        user = rng.choice(USERS)
        org = ORGS[USERS.index(user) % len(ORGS)]  # a user stays in one org
        paths.append((kind, f"/{kind}?user={user}&org={org}"))
    return paths


def one_request(host: str, port: int, path: str, rid: str) -> tuple[int, int, str]:
    """(status, worker pid, error) of one GET on a new connection."""
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        conn.request("GET", path, headers={REQUEST_HEADER: rid, "Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.status, int(response.getheader(WORKER_HEADER) or 0), ""
    except (OSError, http.client.HTTPException) as exc:
        return 0, 0, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


def run(urls: list[str], requests: int, rate: float, threads: int, seed: int) -> list[Result]:
    targets = [urlsplit(url) for url in urls]
    apps = [(t.hostname or "127.0.0.1", t.port or 80) for t in targets]
    paths = plan_paths(requests, seed)
    total = requests * len(apps)
    results: list[Optional[Result]] = [None] * total
    print("start", flush=True)  # the soak times its fault phases from this line
    start = time.monotonic()

    def sender(app: int, todo: Iterator[int], lock: threading.Lock) -> None:
        clock = time.monotonic
        while True:
            with lock:
                n = next(todo, None)
            if n is None:
                return
            i = n * len(apps) + app  # the plan's n-th request, to each app in turn
            due = start + i / (rate * len(apps))
            wait = due - clock()
            if wait > 0:
                time.sleep(wait)
            kind, path = paths[n]
            rid = f"r{i}"
            sent = clock()
            status, pid, error = one_request(*apps[app], path, rid)
            done = clock()
            results[i] = Result(
                app,
                rid,
                kind,
                status,
                pid,
                round(sent - start, 4),
                round((done - sent) * 1000, 3),
                round(max(0.0, sent - due) * 1000, 3),
                error,
            )

    # Each app has threads of its own: a slow app must not hold up the other's requests.
    pool = []
    for app in range(len(apps)):
        todo, lock = iter(range(requests)), threading.Lock()
        pool += [
            threading.Thread(target=sender, args=(app, todo, lock), name=f"load-{app}-{k}", daemon=True)
            for k in range(threads)
        ]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return [r for r in results if r is not None]


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    results = run(plan["urls"], plan["requests"], plan["rate"], plan["threads"], plan["seed"])
    with open(sys.argv[2], "w") as out:
        for result in results:
            out.write(json.dumps(asdict(result)) + "\n")


if __name__ == "__main__":
    main()
