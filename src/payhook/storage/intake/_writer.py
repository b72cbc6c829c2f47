"""The SQLite writer thread: the only write connection, committing callbacks in groups.

Concurrent callbacks queue up as jobs and are committed together (group commit): the group
runs in one ``BEGIN IMMEDIATE`` transaction and ends with one ``COMMIT`` (one fsync with
``synchronous=FULL``), and only then is any job answered: nothing is acknowledged before its
commit is durable. A job that fails rolls back its group, whose jobs then run again, each in
a transaction of its own, so one job's failure never sinks the others (cheaper than a
savepoint around every job, since failures are rare).

Background jobs (the refused-callback audit, :meth:`SqliteWriter.run_background`) have lower
priority: the writer runs one only when no callback is waiting, each in a transaction of its
own, so a callback that arrives meanwhile waits for at most one background commit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from payhook.errors import StorageUnavailableError
from payhook.storage._engine import SQLITE_PRAGMAS

__all__ = ["GroupConnection", "SqliteWriter"]

logger = logging.getLogger("payhook.storage")

T = TypeVar("T")


class _Job:
    __slots__ = ("background", "fn", "future", "loop")

    def __init__(
        self,
        fn: Callable[[GroupConnection], Any],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        *,
        background: bool = False,
    ) -> None:
        self.fn = fn
        self.loop = loop
        self.future = future
        self.background = background


def _settle(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in results:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class GroupConnection(sqlite3.Connection):
    """The writer's connection; ``group`` holds what the jobs of one group transaction may
    share (read inside it, so no other connection can change it meanwhile: the group holds
    the write lock from BEGIN IMMEDIATE to COMMIT)."""

    group: dict[str, Any]


class SqliteWriter:
    """A thread that owns the only SQLite write connection and commits jobs in groups.

    ``commit_delay_s``: when the previous group held more than one job (callbacks are
    arriving concurrently), the writer waits this long before taking the next group, so
    more jobs share its COMMIT and fsync; an isolated callback is never delayed. The idea
    is PostgreSQL's ``commit_delay`` with ``commit_siblings``. ``sleep`` is injectable for
    tests.
    """

    max_batch = 256

    def __init__(
        self,
        path: str,
        *,
        busy_timeout_s: float = 3.0,
        on_commit: Callable[[], None] | None = None,
        commit_delay_s: float = 0.001,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._path = path
        self._commit_delay_s = commit_delay_s
        self._sleep = sleep
        # How long a write waits for a lock held elsewhere before the callback gets the
        # provider's "try again" answer (WeChat Pay wants an answer within 5 s).
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        # Background jobs taken off the queue, waiting for a moment without callbacks
        # (touched by the writer thread only).
        self._deferred: collections.deque[_Job] = collections.deque()
        self._thread: threading.Thread | None = None
        self._on_commit = on_commit

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="payhook-sqlite-writer", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    async def run(self, fn: Callable[[GroupConnection], T]) -> T:
        """Run ``fn`` inside the next group transaction; returns once it is durably committed."""
        return await self._submit(fn, background=False)

    async def run_background(self, fn: Callable[[GroupConnection], T]) -> T:
        """Run ``fn`` in a transaction of its own once no :meth:`run` job is waiting; returns
        once it is durably committed."""
        return await self._submit(fn, background=True)

    async def _submit(self, fn: Callable[[GroupConnection], T], *, background: bool) -> T:
        if self._thread is None:
            raise StorageUnavailableError("the SQLite writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, loop, future, background=background))
        return await future

    def _connect(self) -> GroupConnection:
        conn = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False, factory=GroupConnection
        )
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        return conn

    def _take(self, batch: list[_Job]) -> bool:
        """Move queued callback jobs into ``batch`` without waiting (deferring background
        ones); True when asked to stop."""
        while len(batch) < self.max_batch:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                return False
            if more is None:
                return True
            if more.background:
                self._deferred.append(more)
            else:
                batch.append(more)
        return False

    def _next(self) -> _Job | None:
        """The next job: a waiting callback job first; a background job only when none is
        waiting; otherwise wait for one. None: asked to stop."""
        while True:
            if self._deferred:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    return self._deferred.popleft()
            else:
                job = self._queue.get()
            if job is None or not job.background:
                return job
            self._deferred.append(job)

    def _run(self) -> None:
        conn: GroupConnection | None = None
        previous = 1
        while True:
            job = self._next()
            if job is None:
                break
            batch = [job]
            if job.background:
                previous = 1
                conn = self._commit_or_fail(conn, batch)
                continue
            stop = self._take(batch)
            if (
                not stop
                and previous > 1
                and len(batch) < self.max_batch
                and self._commit_delay_s > 0
            ):
                self._sleep(self._commit_delay_s)
                stop = self._take(batch)
            previous = len(batch)
            conn = self._commit_or_fail(conn, batch)
            if stop:
                break
        if conn is not None:
            conn.close()
        if self._deferred:
            deferred, self._deferred = list(self._deferred), collections.deque()
            self._fail(deferred, StorageUnavailableError("the SQLite writer stopped"))

    def _commit_or_fail(
        self, conn: GroupConnection | None, batch: list[_Job]
    ) -> GroupConnection | None:
        """Commit ``batch`` as one group; the connection to use next (None: reconnect)."""
        try:
            if conn is None:
                conn = self._connect()
            self._commit_batch(conn, batch)
        except sqlite3.Error as exc:
            logger.error("SQLite write failed: %s", exc, extra={"action": "storage_unavailable"})
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
                conn = None
            self._fail(batch, StorageUnavailableError("the SQLite database cannot be written"))
        return conn

    def _fail(self, batch: list[_Job], error: Exception) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for job in batch:
            by_loop.setdefault(job.loop, []).append((job.future, False, error))
        for loop, results in by_loop.items():
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, results)

    def _commit_batch(self, conn: GroupConnection, batch: list[_Job]) -> None:
        results: list[tuple[_Job, bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        conn.group = {}
        try:
            for job in batch:
                results.append((job, True, job.fn(conn)))
            conn.execute("COMMIT")
        except sqlite3.OperationalError:
            # The database itself is in trouble (locked, read-only, I/O): fail the batch.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        except Exception as exc:  # noqa: BLE001 - one job's own failure must not sink the others
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(batch) > 1:
                for job in batch:  # isolate the culprit: each job in its own transaction
                    self._commit_batch(conn, [job])
                return
            results = [(batch[0], False, exc)]
        if self._on_commit is not None and any(ok for _j, ok, _v in results):
            self._on_commit()
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for job, ok, value in results:
            by_loop.setdefault(job.loop, []).append((job.future, ok, value))
        for loop, settled in by_loop.items():
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, settled)
