"""Stopping a run cleanly on SIGINT or SIGTERM (Ctrl-C, or a cluster scheduler before preemption).

While ``StopRequests`` is active, the first SIGINT or SIGTERM only records the request: the run finishes the
round it is in, writes a checkpoint and raises ``Interrupted``, which the command line turns into one line and
the conventional exit code (128 + the signal number: 130 for SIGINT, 143 for SIGTERM). A second Ctrl-C raises
``KeyboardInterrupt`` at once (no checkpoint); further SIGTERMs are ignored (the stop is already under way).
"""
from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

log = logging.getLogger("concord")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run stopped at a round boundary because a signal asked it to (sacred records it as INTERRUPTED)."""

    STATUS = "INTERRUPTED"

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class StopRequests:
    """``with StopRequests() as stop:`` … ``stop.signum`` is the first signal received, or None.

    Handlers are installed only in the main thread (Python delivers signals there) and restored on exit.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt("second Ctrl-C: aborted without a checkpoint")
            return
        self.signum = signum
        log.warning("%s received: stopping after this round with a checkpoint (Ctrl-C again aborts at once)",
                    signal.Signals(signum).name)
