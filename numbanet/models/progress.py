"""The per-epoch progress bar of ``fit(verbose=1)`` and the one-liner of ``verbose=2``."""
from __future__ import annotations

import sys
import time


def _fmt_logs(logs):
    return "".join(f" - {k}: {v:.4f}" for k, v in logs.items())


def _fmt_time(seconds):
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{seconds:.0f}s"


class ProgressBar:
    """``12/50 [=====>..............] - ETA: 3s - loss: 0.1234`` redrawn in place."""

    width = 30

    def __init__(self, total, verbose=1, stream=None, interval=0.05, unit="step"):
        self.unit = unit
        self.total, self.verbose, self.stream, self.interval = total, verbose, stream or sys.stdout, interval
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.last_len = 0

    def due(self, step):
        """Whether ``update(step, logs)`` would draw: verbose=1, and the last step or ``interval``
        seconds (50 ms, as Keras) since the last drawing."""
        return self.verbose == 1 and (step >= self.total or time.perf_counter() - self.last_draw >= self.interval)

    def update(self, step, logs):
        if self.verbose != 1:
            return
        now = time.perf_counter()
        if step < self.total and now - self.last_draw < self.interval:
            return
        self.last_draw = now
        done = int(self.width * step / self.total)
        bar = "=" * max(done - 1, 0) + (">" if step < self.total else "=") + "." * (self.width - done)
        elapsed = now - self.start
        if step < self.total:
            eta = elapsed / max(step, 1) * (self.total - step)
            timing = f"ETA: {_fmt_time(eta)}"
        else:
            timing = f"{_fmt_time(elapsed)} {1e3 * elapsed / self.total:.1f}ms/{self.unit}"
        width = len(str(self.total))
        text = f"{step:>{width}}/{self.total} [{bar[:self.width]}] - {timing}{_fmt_logs(logs)}"
        self.stream.write("\r" + text + " " * max(self.last_len - len(text), 0))
        self.last_len = len(text)
        self.stream.flush()

    def finish(self, logs):
        elapsed = time.perf_counter() - self.start
        if self.verbose == 1:
            self.last_draw = 0.0
            self.update(self.total, logs)
            self.stream.write("\n")
        elif self.verbose == 2:
            self.stream.write(f"{self.total}/{self.total} - {_fmt_time(elapsed)} - "
                              f"{1e3 * elapsed / max(self.total, 1):.0f}ms/step{_fmt_logs(logs)}\n")
        else:
            return                                  # verbose=0 writes nothing
        self.stream.flush()
