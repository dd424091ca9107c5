"""A drop-oldest queue of one frame and a worker thread, so slow inference never blocks the
ROS executor: the callback hands the newest frame over and returns at once. ROS-free."""
from __future__ import annotations

import threading
from typing import Any, Callable


class FrameWorker:
    """Runs ``process(item)`` on a background thread for the most recent submitted item.

    A frame submitted while another waits replaces it (the waiting one is dropped and
    counted). Exceptions from ``process`` go to ``on_error`` and the worker keeps going.
    """

    def __init__(self, process: Callable[[Any], None], *, on_error: Callable[[BaseException], None] | None = None,
                 name: str = "frame-worker"):
        self._process = process
        self._on_error = on_error
        self._cond = threading.Condition()
        self._pending: Any = None
        self._has_pending = False
        self._busy = False
        self._stopping = False
        self.dropped = 0
        self.processed = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> bool:
        """Queue `item`; returns True if an older waiting item was dropped to make room."""
        with self._cond:
            dropped = self._has_pending
            if dropped:
                self.dropped += 1
            self._pending, self._has_pending = item, True
            self._cond.notify()
            return dropped

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._has_pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                item, self._pending, self._has_pending = self._pending, None, False
                self._busy = True
            try:
                self._process(item)
            except BaseException as exc:  # noqa: BLE001 - reported, the worker must survive
                if self._on_error is not None:
                    self._on_error(exc)
            finally:
                with self._cond:
                    self._busy = False
                    self.processed += 1
                    self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending or running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._has_pending and not self._busy, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the frame in progress (a waiting frame is discarded)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
