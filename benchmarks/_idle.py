"""Whether a waiting thread's CPU idles: the machine setting that moves scenario 1's caller figure.

A thread that waits for the GIL leaves its CPU idle. On the VMs these benchmarks run on, an
idle vCPU halts at once (``cpuidle`` driver haltpoll, ``haltpoll.guest_halt_poll_ns=0`` on
the kernel command line), and the waiting thread runs slower for a while once it is woken
(docs/benchmarks.md, "Why the caller thread pays for other threads"). Linux's PM QoS request,
writing 0 to ``/dev/cpu_dma_latency`` and holding the file open, keeps idle CPUs in the poll
state instead. (tuned's latency profiles make the same request with 1 µs, which here still
allows the 1 µs haltpoll state.) Needs root; the request ends when the file is closed.

The other way to keep the waiting thread's CPU from idling needs no root: put every thread
of the process on one CPU (``one_cpu``). The thread that holds the GIL then runs on the CPU
the waiting thread left, and the waiting thread is woken where it is.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager

PM_QOS = "/dev/cpu_dma_latency"
CPUIDLE = "/sys/devices/system/cpu/cpuidle"
TASKS = "/proc/self/task"


def can_poll() -> bool:
    return os.access(PM_QOS, os.W_OK)


def can_pin() -> bool:
    """Linux (per-thread affinity, ``/proc/self/task``) and more than one CPU to choose from."""
    if not hasattr(os, "sched_setaffinity") or not os.path.isdir(TASKS):
        return False
    return len(os.sched_getaffinity(0)) > 1


def describe() -> str:
    """The machine's idle set-up, for the notes: cpuidle driver, governor, halt-poll window."""
    found = {}
    for label, path in (
        ("driver", f"{CPUIDLE}/current_driver"),
        ("governor", f"{CPUIDLE}/current_governor_ro"),
        ("guest_halt_poll_ns", "/sys/module/haltpoll/parameters/guest_halt_poll_ns"),
    ):
        try:
            with open(path) as f:
                found[label] = f.read().strip()
        except OSError:
            continue
    return "cpuidle " + (", ".join(f"{k} {v}" for k, v in found.items()) or "unknown")


@contextmanager
def polling() -> Iterator[None]:
    """Idle CPUs poll instead of halting while the context is open."""
    with open(PM_QOS, "wb", buffering=0) as request:
        request.write(struct.pack("i", 0))
        yield


@contextmanager
def one_cpu() -> Iterator[None]:
    """Every thread of this process on one CPU while the context is open.

    Threads started meanwhile inherit the mask of the thread that starts them, so every
    thread found at the end gets the process's CPUs back; one that ended is skipped.
    """
    allowed = os.sched_getaffinity(0)
    cpu = {min(allowed)}
    _set_every_thread(cpu)
    try:
        yield
    finally:
        _set_every_thread(allowed)


def _set_every_thread(cpus: set[int]) -> None:
    for tid in os.listdir(TASKS):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:  # the thread ended since listdir
            continue
