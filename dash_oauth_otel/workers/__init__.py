"""Token work off the request thread, in worker processes, with its telemetry context.

The code exchange, refresh, revocation and introspection can run in a
:class:`ProcessPoolBackend` (this host) or a :class:`CeleryBackend` (any host).
The main process captures the trace context, ``OTEL_*`` environment, switches,
digest key and correlation id; the worker replays them, opens the catalogued
``*.worker`` span under the main-process parent, and returns its outcome and
audit events, all sealed with the client's secret.  Each task is bound to
itself (:mod:`dash_oauth_otel.workers.binding`): a copy of its input run as
another operation or a second time, or its outcome given to another task, is
refused with :class:`~dash_oauth_otel.errors.TaskBindingError`.
"""

from __future__ import annotations

from dash_oauth_otel.errors import WorkerTimeoutError as WorkerTimeoutError
from dash_oauth_otel.workers.backends import CeleryBackend as CeleryBackend
from dash_oauth_otel.workers.backends import PendingTask as PendingTask
from dash_oauth_otel.workers.backends import ProcessPoolBackend as ProcessPoolBackend
from dash_oauth_otel.workers.backends import WorkerBackend as WorkerBackend
from dash_oauth_otel.workers.context import TaskContext as TaskContext
from dash_oauth_otel.workers.dispatch import Dispatcher as Dispatcher
from dash_oauth_otel.workers.tasks import run_task as run_task

__all__ = [
    "CeleryBackend",
    "Dispatcher",
    "PendingTask",
    "ProcessPoolBackend",
    "TaskContext",
    "WorkerBackend",
    "WorkerTimeoutError",
    "run_task",
]
