"""The Dask cluster that grades, and the progress display.

:func:`connect` starts a ``LocalCluster`` (one single-threaded worker process per task slot, on
127.0.0.1, no dashboard) or connects to an existing scheduler by address or scheduler file; TLS
comes from Dask's own configuration (``distributed.comm.tls.*``) when the address starts with
``tls://``. :func:`run_tasks` keeps a bounded number of students in flight, so the client never
holds a whole class's files at once, and hands each result to a callback as it arrives.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager

# A task that is running on a worker when the worker dies is rerun on another one; after this many
# deaths Dask gives up on it (KilledWorker) and the batch goes on. One task per worker thread
# (saturation 1.0), so a worker's death counts only against the task it was running.
DASK_CONFIG = {
    "distributed.scheduler.allowed-failures": 2,
    "distributed.scheduler.worker-saturation": 1.0,
    # Grading starts child processes (the sandboxed kernel, the file checks, ps3's training), which
    # a daemonic worker process may not.
    "distributed.worker.daemon": False,
}
KILLED_STATUS = "kills grading workers"


def default_workers() -> int:
    """One worker per core this process may use."""
    return max(1, _usable_cores())


@contextmanager
def connect(
    workers: int | None = None, scheduler: str | None = None, scheduler_file: str | None = None
):
    """A Dask client: an existing cluster's (``scheduler`` address or ``scheduler_file``) or a local
    one."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set(DASK_CONFIG):
        if scheduler or scheduler_file:
            with _existing_cluster(Client, scheduler, scheduler_file) as client:
                yield client
            return
        with LocalCluster(
            n_workers=workers or default_workers(),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster:
            with Client(cluster) as client:
                yield client


def _existing_cluster(Client, scheduler: str | None, scheduler_file: str | None):
    """A client of the scheduler at ``scheduler`` (or named in ``scheduler_file``), or a one-line
    error."""
    where = scheduler or f"the address in {scheduler_file}"
    try:
        return Client(scheduler, scheduler_file=scheduler_file, timeout="30s")
    except (
        OSError,
        ValueError,
    ) as exc:  # unreachable, refused, timed out, no such file, a malformed address
        raise SystemExit(
            f"error: cannot connect to the Dask scheduler at {where}: "
            f"{str(exc).splitlines()[0][:300]}. Fix: start the scheduler and its workers "
            "(book/instructors.md), check the address and the firewall, or grade on this machine "
            "with --workers N."
        ) from None


def thread_shares(client) -> dict[str, int]:
    """{worker host: the cores each task there may use}: the host's cores over its task slots."""
    cores = client.run(_usable_cores)  # {worker address: cores of its machine}
    slots, counted = {}, {}
    for address, worker in client.scheduler_info()["workers"].items():
        host = worker.get("host") or address.rsplit(":", 1)[0]
        slots[host] = slots.get(host, 0) + worker.get("nthreads", 1)
        counted[host] = cores.get(address, 1)
    return {host: max(1, counted[host] // slots[host]) for host in slots}


def warm_up(client) -> None:
    """Have every worker import the grading code now, while the client prepares the batch, instead
    of in its first task."""
    client.run(_import_grading_code, wait=False, on_error="ignore")


async def _import_grading_code() -> None:
    # A coroutine (what Dask runs without waiting), whose imports run in a thread: the worker's
    # event loop keeps answering the scheduler meanwhile.
    import asyncio

    await asyncio.to_thread(_imports)


def _imports() -> None:
    # cnnbook.batch.task first, where a task's unpickling (on the event loop) starts too: entering
    # nbgrader's circular imports at another module at the same time deadlocks two import locks,
    # one thread gets a partially initialized module, and the worker stops taking tasks.
    # isort: off
    import cnnbook.batch.task  # noqa: F401
    import nbgrader.converters  # noqa: F401
    from cnnbook.grader import preprocessors  # noqa: F401
    # isort: on


def _usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_tasks(
    client, function, shared, jobs, on_result, on_failure, in_flight: int | None = None
) -> None:
    """Submit ``function(shared, job)`` for each job, at most ``in_flight`` at a time; results go to
    ``on_result(job, result)``, tasks that failed to ``on_failure(job, status, note)``."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    slots = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1
    in_flight = in_flight or 2 * slots
    # A task that returns ``shared``, not scattered data: when every worker that held it has died,
    # the scheduler computes it again (lost scattered data cancels every task that needs it).
    shared = client.submit(_same, shared, pure=False, key=f"shared-{os.urandom(4).hex()}")
    jobs = iter(jobs)
    running, pending = {}, as_completed()

    def submit_next() -> None:
        for job in jobs:
            future = _submit_queued(
                client, f"grade-{job['student']}-{os.urandom(4).hex()}", function, shared, job
            )
            running[future] = job
            pending.add(future)
            return

    for _ in range(in_flight):
        submit_next()
    for future in pending:
        job = running.pop(future)
        try:
            result = future.result()
        except KilledWorker:
            deaths = DASK_CONFIG["distributed.scheduler.allowed-failures"] + 1
            on_failure(
                job,
                KILLED_STATUS,
                f"the grading worker died {deaths} times while grading this "
                "submission; it was not graded",
            )
        except Exception as exc:  # noqa: BLE001 - one student's failure must not stop the batch
            on_failure(job, "error", f"grading failed on the worker: {exc!r}"[:500])
        else:
            on_result(job, result)
        submit_next()


def _submit_queued(client, key: str, function, *args):
    """``client.submit(function, *args)``, as a task the scheduler queues until a worker thread is
    free.

    Marked as a data producer, the task is "root-ish": the scheduler sends a worker only as many as
    it has threads (``worker-saturation``) and keeps the rest queued. A plain task would be assigned
    to a busy worker at once, and that worker's death would count against it too.
    """
    from dask.task_spec import Task

    return client.get({key: Task(key, function, *args, _data_producer=True)}, key, sync=False)


def _same(value):
    return value


class Progress:
    """A bar with counts and an ETA on a terminal; one plain line per student otherwise."""

    def __init__(self, total: int, label: str):
        self.total, self.label, self._bar = total, label, None
        self.live = sys.stdout.isatty()

    def __enter__(self):
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import (
                Progress as Bar,
            )

            self._bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total)
        return self

    def line(self, text: str, advance: bool = True) -> None:
        if self._bar is None:
            print(text, flush=True)
            return
        self._bar.console.print(text, markup=False, highlight=False)
        if advance:
            self._bar.advance(self._task)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)
