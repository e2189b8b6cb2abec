"""How a running sweep ends when it is told to stop (SIGTERM from `timeout`, a Kubernetes eviction or `ray job
stop`; SIGINT from Ctrl-C) or loses its tracking store for good.

Python's default SIGTERM ends the process without running any cleanup, which left a sweep's runs RUNNING forever. Here
the first SIGTERM or SIGINT raises `Interrupted` in the main thread (where the driver waits for nodes or, on the local
executor, runs one), so the scheduler marks its in-flight runs KILLED with the signal's name and the CLI writes
summary.json for what finished and ends the sweep's run KILLED. A signal that arrives during a call to a database
store (sqlite) is raised when the call returns: raised inside it, it would leave the call's transaction open and the
database locked against the cleanup's own writes (track/resilient.py). From then on the cleanup is shielded: a further
signal does not interrupt it half-way, except that a second signal exits at once (os._exit), for whoever cannot wait.

Exit codes: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as shells report a process a signal ended;
EXIT_STORE_LOST (3) when the tracking store stopped answering for good."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Optional

from orchestrator.track import StoreUnavailable
from orchestrator.track.resilient import after_store_call, in_store_call

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_STORE_LOST = 3


class Interrupted(BaseException):
    """The sweep was told to stop. A BaseException, like KeyboardInterrupt, so that no `except Exception` around a
    node's code mistakes it for the node failing."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class GracefulStop:
    """A context manager around a sweep's run: installs the handlers (after Ray's own, which exit without
    cleaning up), swallows `Interrupted` once the cleanup inside has run, and restores the handlers."""

    def __init__(self, say: Callable[[str], None] = lambda text: print(text, file=sys.stderr)):
        self.say = say
        self.signum: Optional[int] = None
        self.store_error: Optional[StoreUnavailable] = None
        self.shielded = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> GracefulStop:
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        if kind is not None and issubclass(kind, Interrupted) and not self.shielded:
            raise SystemExit(128 + error.signum)  # stopped before the cleanup could start: nothing to report
        return kind is not None and issubclass(kind, Interrupted)

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            self.say(f"{name} again: stopping at once")
            os._exit(128 + signum)
        self.signum = signum
        if self.shielded:
            self.say(f"{name}: the sweep is already ending; send it again to stop at once")
            return
        self.say(
            f"{name}: stopping the sweep (in-flight nodes are marked KILLED, what finished is kept); "
            "send it again to stop at once"
        )
        if in_store_call():  # not inside a database transaction: once the call has closed it
            after_store_call(lambda: self._interrupt(signum))
            return
        raise Interrupted(signum)

    def _interrupt(self, signum: int) -> None:
        if not self.shielded:  # the cleanup may have begun while the store call ran
            raise Interrupted(signum)

    def shield(self) -> None:
        """From here on (the cleanup) a first signal is noted, not raised."""
        self.shielded = True

    def lost_store(self, error: StoreUnavailable) -> None:
        self.store_error = error

    def record(self, action: Callable[[], None]) -> None:
        """A store call of the cleanup: skipped when the store is lost, and a store lost now is noted, not raised."""
        if self.store_error is None:
            try:
                action()
            except StoreUnavailable as error:
                self.store_error = error

    @property
    def reason(self) -> Optional[str]:
        """Why the sweep was stopped, for its run's `killed` tag (None: it was not)."""
        return f"the sweep was stopped by {signal.Signals(self.signum).name}" if self.signum is not None else None

    def exit_code(self, ok: bool) -> int:
        if self.signum is not None:
            return 128 + self.signum
        if self.store_error is not None:
            return EXIT_STORE_LOST
        return 0 if ok else 1
