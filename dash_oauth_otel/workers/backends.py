"""Where tasks run: a worker-backend protocol and its two backends.

* :class:`ProcessPoolBackend` — worker processes on this host, no extra
  service (the embedded default).
* :class:`CeleryBackend` — Celery workers on any host reaching the broker
  (Redis as broker and result backend is the documented set-up).

Both run the same task (:func:`~dash_oauth_otel.workers.tasks.run_task`;
:func:`~dash_oauth_otel.workers.tasks.run_broker_task` for Celery, which also
requires the workers' client to share a store) with the same sealed input, so
what happens in a worker does not depend on the backend.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading
from typing import Any
from typing import Protocol
from typing import runtime_checkable

from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.workers.tasks import run_broker_task
from dash_oauth_otel.workers.tasks import run_task

__all__ = [
    "CELERY_TASK_NAME",
    "CeleryBackend",
    "PendingTask",
    "ProcessPoolBackend",
    "WorkerBackend",
]

CELERY_TASK_NAME = "dash_oauth_otel.run_task"


@runtime_checkable
class PendingTask(Protocol):
    """A submitted task."""

    def result(self, timeout: float | None = None) -> str:
        """Wait for the sealed outcome; raise ``TimeoutError`` after ``timeout`` seconds."""

    def cancel(self) -> bool:
        """Try to cancel the task before it starts."""


@runtime_checkable
class WorkerBackend(Protocol):
    """Runs :func:`~dash_oauth_otel.workers.tasks.run_task` somewhere else."""

    def submit(
        self, operation: str, sealed: str, client_path: str, worker_init: str | None
    ) -> PendingTask:
        """Send one task; return a handle to its outcome."""

    def shutdown(self) -> None:
        """Release the backend's resources."""


class _FuturePending:
    def __init__(self, future: concurrent.futures.Future[str]) -> None:
        self._future = future

    def result(self, timeout: float | None = None) -> str:
        try:
            return self._future.result(timeout=timeout)
        except concurrent.futures.TimeoutError as exc:
            raise TimeoutError("the worker did not answer in time") from exc

    def cancel(self) -> bool:
        return self._future.cancel()


class ProcessPoolBackend:
    """Worker processes on this host (``concurrent.futures`` with ``spawn``).

    :param max_workers: Number of worker processes.
    """

    def __init__(self, max_workers: int = 2) -> None:
        if max_workers < 1:
            raise ConfigError("ProcessPoolBackend(max_workers=...) must be at least 1.")
        self.max_workers = max_workers
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"ProcessPoolBackend(max_workers={self.max_workers})"

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn: a fresh interpreter, never a fork of a threaded server.
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=self.max_workers, mp_context=multiprocessing.get_context("spawn")
                )
            return self._pool

    def submit(
        self, operation: str, sealed: str, client_path: str, worker_init: str | None
    ) -> PendingTask:
        """Run the task in one of the pool's processes."""
        try:
            future = self._executor().submit(run_task, operation, sealed, client_path, worker_init)
        except concurrent.futures.BrokenExecutor:
            with self._lock:
                self._pool = None  # a worker died: start a new pool for the next tasks
            future = self._executor().submit(run_task, operation, sealed, client_path, worker_init)
        return _FuturePending(future)

    def shutdown(self) -> None:
        """Stop the worker processes."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None


class _CeleryPending:
    def __init__(self, async_result: Any) -> None:
        self._result = async_result

    def result(self, timeout: float | None = None) -> str:
        from celery.exceptions import TimeoutError as CeleryTimeout

        try:
            value = self._result.get(timeout=timeout, propagate=False, disable_sync_subtasks=False)
        except CeleryTimeout as exc:
            raise TimeoutError("the worker did not answer in time") from exc
        # Only a sealed outcome is believed: a failure stored in the result
        # backend (which its writers can forge) is never raised as it reads.
        if self._result.state != "SUCCESS" or not isinstance(value, str):
            raise RuntimeError("the Celery task returned no sealed outcome")
        return value

    def cancel(self) -> bool:
        self._result.revoke()
        return True


class CeleryBackend:
    """Celery workers (any host reaching the broker).

    The workers' client needs a ``state_store`` shared by every worker (a
    ``RedisStore``): it records the tasks run, so that a task sent twice through
    the broker runs once.  Register the task on your Celery app in the module
    the workers import::

        celery_app = Celery("myapp", broker="redis://…", backend="redis://…")
        backend = CeleryBackend(celery_app)

    :param app: The Celery application (``celery.Celery``).
    :param queue: The queue tasks are sent to (``None``: the default queue).
    """

    def __init__(self, app: Any, *, queue: str | None = None) -> None:
        try:
            import celery  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(
                "CeleryBackend needs Celery: pip install 'dash-oauth-otel[celery]'."
            ) from exc
        self.app = app
        self.queue = queue
        self._task = app.tasks.get(CELERY_TASK_NAME) or app.task(name=CELERY_TASK_NAME)(
            run_broker_task
        )

    def __repr__(self) -> str:
        return f"CeleryBackend(app={getattr(self.app, 'main', self.app)!r}, queue={self.queue!r})"

    def submit(
        self, operation: str, sealed: str, client_path: str, worker_init: str | None
    ) -> PendingTask:
        """Send the task to the broker."""
        options = {"queue": self.queue} if self.queue else {}
        return _CeleryPending(
            self._task.apply_async(args=(operation, sealed, client_path, worker_init), **options)
        )

    def shutdown(self) -> None:
        """Nothing to release: workers are managed by Celery."""
