"""Store calls that outlive a tracking server's short outage, and a clear error when it is gone.

A cluster's MLflow server restarts (an upgrade, a moved pod, its database failing over); a sweep of many GPU-hours
must not die with it. Every call to the MLflow client goes through `RetryingClient`: a call that could not reach the
server is tried again with exponential backoff (0.5 s doubling to 30 s) for up to OUTAGE_SECONDS in all, then raises
`StoreUnavailable`; after that every call is tried once only, so a sweep that lost its store stops at once instead of
waiting out the window again for each call it makes on the way out. A call that succeeds closes the outage.

Only failures to reach the server are retried (MLflow reports them as `API request to ... failed with exception`,
after its own retries, which `http_defaults` makes short so that this window is the one that counts); an error the
server answered with (no such run, bad filter) is raised at once. Before a sweep opens an HTTP store, `probe` asks the
server's /health once or twice with a short timeout, so a wrong or dead `--tracking-uri` is one line in seconds
rather than minutes in MLflow's retries.

A retried call may have reached the server before the connection broke; the calls a sweep makes tolerate that (tags
and terminal states are set again to the same value; a claim run made twice is one more run of the same sweep, which
the claim protocol resolves like any other).

A stop signal must not land inside a call to a database-backed store (sqlite, PostgreSQL: MLflow's SQLAlchemy
store): raised there, it leaves the call's transaction open on a pooled connection, and an open sqlite transaction
locks the file against every writer, this process's cleanup and the Ray workers included ("database is locked" until
the process ends). `deferring_signals` lets a signal handler wait for the call to end instead (`after_store_call`).
Calls to an HTTP server are not deferred (an interrupted request holds nothing), nor are the waits between retries."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Optional

OUTAGE_SECONDS = float(os.environ.get("UNLEARN_SWEEP_STORE_OUTAGE_SECONDS", 600))
FIRST_DELAY, MAX_DELAY = 0.5, 30.0
PROBE_TIMEOUT = 3.0  # seconds per /health request; two tries
# MLflow's own retries of one HTTP request, unless the user set them: short, so the outage window above governs.
# And no "View run ... at" line on stdout when a run ends: MLflow reads the whole run back (one more request per
# node, for the server to answer) only to print it.
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
UNREACHABLE = re.compile(r"API request to .* failed with (timeout )?exception")

log = logging.getLogger("unlearn_sweep.store")


class _StoreCalls(threading.local):
    """Per thread (signal handlers run in the main thread): how deep in store calls it is, and what to do once out."""

    depth = 0
    deferred: Optional[Callable[[], None]] = None


_calls = _StoreCalls()


def in_store_call() -> bool:
    """Whether this thread is inside a call to a database-backed store that a signal must not interrupt."""
    return _calls.depth > 0


def after_store_call(action: Callable[[], None]) -> None:
    """Runs `action` (once) as soon as this thread's store call ends; it may raise, in place of the call's return."""
    _calls.deferred = action


@contextmanager
def deferring_signals() -> Iterator[None]:
    """Marks a store call: a signal handler that asks `in_store_call` defers what it does to the call's end."""
    _calls.depth += 1
    try:
        yield
    finally:
        _calls.depth -= 1
        if _calls.depth == 0 and _calls.deferred is not None:
            action, _calls.deferred = _calls.deferred, None
            action()


class StoreUnavailable(RuntimeError):
    """The tracking server did not answer within the outage window (or at all, when probed before a sweep)."""


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def http_defaults() -> None:
    for name, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def probe(uri: str, tries: int = 2) -> None:
    """Raises StoreUnavailable, naming the URI, when nothing answers at the server's /health. Any HTTP answer,
    even an error status (a proxy, an auth front end), means a server is there."""
    error: Exception = RuntimeError("no try")
    for attempt in range(tries):
        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT).close()
            return
        except urllib.error.HTTPError:
            return
        except (OSError, ValueError) as failure:  # refused, unknown host, timed out, not a URL
            error = failure
            if attempt + 1 < tries:
                time.sleep(1.0)
    reason = getattr(error, "reason", error)
    raise StoreUnavailable(f"no MLflow tracking server answers at {uri} ({type(reason).__name__}: {reason})")


def unreachable(error: BaseException) -> bool:
    return type(error).__name__ == "MlflowException" and bool(UNREACHABLE.match(str(error)))


class RetryingClient:
    """An MlflowClient whose calls are retried through an outage (see the module's docstring). Attributes that are
    not methods pass through unchanged."""

    def __init__(self, client, uri: str):
        self._client, self._uri = client, uri
        self._database = not is_http(uri)  # a signal waits for a database call to end (the module's docstring)
        self._lost = False  # an outage outlasted the window: try each call once until one succeeds

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr
        return lambda *args, **kwargs: self._call(name, attr, args, kwargs)

    def log_artifact_at(self, artifact_uri: str, local_path: str) -> None:
        """`log_artifact` into a run whose artifact URI the caller already holds (from the claim that created it):
        MlflowClient would read the run back to find it, one request more per node for the server. Retried alike."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repo = get_artifact_repository(artifact_uri, tracking_uri=self._uri)
        self._call("log_artifact", repo.log_artifact, (local_path,), {})

    def _call(self, name: str, method, args, kwargs):
        deadline, delay, warned = None, FIRST_DELAY, False
        while True:
            try:
                if self._database:
                    with deferring_signals():
                        result = method(*args, **kwargs)
                else:
                    result = method(*args, **kwargs)
            except Exception as error:  # only the unreachable kind is retried (the rest re-raised)
                if not unreachable(error):
                    raise
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + OUTAGE_SECONDS
                if self._lost or now >= deadline:
                    self._lost = True
                    raise StoreUnavailable(
                        f"the tracking server at {self._uri} has not answered for "
                        f"{OUTAGE_SECONDS:g} s ({name}: {str(error).splitlines()[0][:300]})"
                    ) from error
                if not warned:
                    log.warning(
                        "tracking server %s unreachable (%s); retrying for up to %g s", self._uri, name, deadline - now
                    )
                    warned = True
                time.sleep(min(delay, max(0.0, deadline - now)))
                delay = min(delay * 2, MAX_DELAY)
                continue
            if warned or self._lost:
                log.warning("tracking server %s answers again", self._uri)
                self._lost = False
            return result
