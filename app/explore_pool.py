"""Explorations in worker processes, so that a search never holds the serving process's GIL.

A search is pure CPU for up to its time limit; in a thread of the serving process it slowed
every other user's pages and runs (issue 14: /api/run p50 1.3 -> 6.2 ms, a page 5.5 -> 31 ms).
Here each search runs in a worker process that imports only the engine, one search at a time,
over its own socket pair:

    server -> worker   ("job", n, Job)          start search n
    server -> worker   ("cancel", n)            the client has gone: stop search n
    worker -> server   ("progress", n, s, t)    throttled to PROGRESS_EVERY_S
    worker -> server   ("done", n, Exploration) or ("error", n, exception)

The engine polls its `cancel` callback every REPORT_EVERY states; the worker's callback reads
the socket there, so a cancelled search stops within one progress interval and answers with its
(truncated) result. Messages carry the job number so that a late cancel can never stop the
worker's next search. A worker that does not answer in time, or dies, is killed and replaced.

`SlotPool.run` is blocking: callers run it in a thread (app/service.py), which waits for a slot
in FIFO order, drives the worker and calls the caller's `progress` from that thread, as the
in-process search always did.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

import engine

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]

NICE = 10  # a worker's CPU weight is then about a tenth of the server's when they compete
PROGRESS_EVERY_S = 0.05  # the socket sends at most one per 0.1 s: this keeps it fed
POLL_S = 0.05  # how often a waiting thread looks at its caller's cancel flag
# After a cancel, or once its time limit has passed, how long a search may take to answer
# before its worker is killed: the engine polls every REPORT_EVERY states, well under this.
GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class Job:
    """One search, as sent to a worker (everything in it pickles)."""

    scenario: engine.Scenario
    config: engine.Config
    max_states: int
    time_limit_s: float
    progress: bool  # whether anyone listens: no progress messages otherwise
    # "Find a bug": engine.find_first (fewest preemptions first, stops at the first
    # violation), then the exhaustive search only if that finds none.
    first: bool = False


def search(job: Job, progress: ProgressFn | None, cancel: CancelFn) -> engine.Exploration:
    """The job's search, wherever it runs."""
    sc, cfg, states, seconds = job.scenario, job.config, job.max_states, job.time_limit_s
    if job.first:
        began = time.monotonic()
        found = engine.find_first(sc, cfg, max_states=states, time_limit_s=seconds, cancel=cancel)
        if found is not None:
            return found
        # One time limit for both searches: the server kills a worker past it (GRACE_S).
        seconds = max(0.0, seconds - (time.monotonic() - began))
    return engine.explore(
        sc, cfg, max_states=states, time_limit_s=seconds, progress=progress, cancel=cancel
    )


class WorkerLost(RuntimeError):
    """A worker process died or overran its deadline; it has been replaced."""


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling, or a RuntimeError that says what it was."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def worker_main(conn: Connection) -> None:
    """A worker process's loop: one job at a time until the socket closes or says None."""
    # Below the server in the scheduler: two searches and the server on two cores otherwise
    # share them evenly, and other users' pages wait their turn (bench_isolation: page p50
    # x2.0 with 2 searches at the same priority).
    with contextlib.suppress(OSError):
        os.nice(NICE)
    # Ctrl-C reaches the whole process group: the server stops its workers itself (None, or
    # EOF when it has gone), so a worker ignores it instead of dying with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        if message[0] != "job":
            continue  # a cancel for a search that has already answered
        _, number, job = message
        try:
            _serve(conn, number, job)
        except OSError:  # the server went away mid-answer: nobody is left to serve
            return
        gc.collect()  # the search's graph is garbage now: give it back before the next one


def _serve(conn: Connection, number: int, job: Job) -> None:
    cancelled = False
    last = 0.0

    def cancel() -> bool:
        nonlocal cancelled
        try:
            while not cancelled and conn.poll():
                message = conn.recv()
                if message is None:
                    raise SystemExit(0)
                cancelled = message == ("cancel", number)
        except (EOFError, OSError):
            raise SystemExit(0) from None  # the server has gone: so does this search
        return cancelled

    def progress(states: int, transitions: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY_S:
            last = now
            conn.send(("progress", number, states, transitions))

    try:
        result = search(job, progress if job.progress else None, cancel)
    except Exception as exc:
        conn.send(("error", number, _portable(exc)))
    else:
        conn.send(("done", number, result))


class _Worker:
    """The server's end of one worker process: `python -m app.explore_pool FD`.

    Started as a plain subprocess over a socket pair rather than with multiprocessing's
    spawn, which re-imports the server's __main__ module in the child (uvicorn's, a
    benchmark's, or none at all for `python -`). The child gets the server's sys.path, so it
    imports the same engine.
    """

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        path = os.pathsep.join(entry for entry in sys.path if entry and os.path.isdir(entry))
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.explore_pool", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": path},
            )
        finally:
            theirs.close()  # the child's end: we see EOF on ours when it dies
        self.conn = Connection(ours.detach())
        self.jobs = 0

    def run(self, job: Job, progress: ProgressFn | None, cancel: CancelFn) -> engine.Exploration:
        self.jobs += 1
        number = self.jobs
        deadline = time.monotonic() + job.time_limit_s + GRACE_S
        cancel_sent = False
        try:
            self.conn.send(("job", number, job))
            while True:
                if self.conn.poll(POLL_S):
                    kind, answered, *rest = self.conn.recv()
                    if answered != number:
                        continue
                    if kind == "progress":
                        if progress is not None:
                            progress(rest[0], rest[1])
                        continue
                    answer: engine.Exploration | BaseException = rest[0]
                    break
                if not self.alive:
                    raise WorkerLost(self.ended())
                if not cancel_sent and cancel():
                    self.conn.send(("cancel", number))
                    cancel_sent = True
                    deadline = min(deadline, time.monotonic() + GRACE_S)
                if time.monotonic() > deadline:
                    raise WorkerLost("the search overran its time limit; its worker was stopped")
        except (EOFError, OSError) as err:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(1.0)
            raise WorkerLost(self.ended()) from err
        if isinstance(answer, BaseException):  # the engine's own error, raised as in process
            raise answer
        return answer

    def ended(self) -> str:
        code = self.process.poll()
        if code is not None and code < 0:
            return f"the search's worker process was killed by signal {-code} (out of memory?)"
        return f"the search's worker process ended (exit code {code})"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(1.0)
        self.kill()

    def kill(self) -> None:
        if self.alive:
            self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(1.0)
        self.conn.close()


class SlotPool:
    """`size` search slots served in FIFO order, each run in a worker process (reused).

    With `in_process` the searches run in the calling thread instead, as before the pool (for
    a platform without processes to spare; they then share the serving process's GIL).
    """

    def __init__(self, size: int, in_process: bool = False) -> None:
        self.size = max(1, size)
        self.in_process = in_process
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()  # tickets of threads waiting for a slot
        self._busy = 0
        self._idle: list[_Worker] = []
        self._closed = False

    @property
    def busy(self) -> int:
        """Slots in use: a search is running there, or its worker has not answered yet."""
        with self._cond:
            return self._busy

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    def warm(self) -> None:
        """Start the worker processes now rather than on the first search."""
        if self.in_process:
            return
        with self._cond:
            while len(self._idle) + self._busy < self.size and not self._closed:
                self._idle.append(_Worker())

    def run(
        self, job: Job, progress: ProgressFn | None, cancel: CancelFn
    ) -> engine.Exploration | None:
        """The search's result; None if `cancel()` turned true while it waited for a slot."""
        if not self._acquire(cancel):
            return None
        worker: _Worker | None = None
        try:
            if self.in_process:
                return search(job, progress, cancel)
            worker = self._take_worker()
            try:
                return worker.run(job, progress, cancel)
            except WorkerLost:
                worker.kill()  # dead or stuck: never reused
                worker = None
                raise
        finally:
            self._release(worker)

    def _acquire(self, cancel: CancelFn) -> bool:
        """Wait for a slot, first come first served; False if cancelled (or closed) first."""
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket or self._busy >= self.size:
                    if cancel() or self._closed:
                        return False
                    self._cond.wait(POLL_S)
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()  # the next in line may be at the head now
            if self._closed:
                return False
            self._busy += 1
            return True

    def _take_worker(self) -> _Worker:
        with self._cond:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    return worker
                worker.kill()
        return _Worker()  # outside the lock: starting a process takes a while

    def _release(self, worker: _Worker | None) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()
            if worker is None:
                return
            if not self._closed:
                self._idle.append(worker)
                return
        worker.stop()

    def close(self) -> None:
        """Stop the idle workers now, the busy ones when their search answers."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for worker in idle:
            worker.stop()


if __name__ == "__main__":
    # Not a fork of the server: started by _Worker with its end of the socket pair.
    worker_main(Connection(int(sys.argv[1])))
