"""A progress bar on stderr for the command line's long jobs (analyze, train, phase-diagram).

On a terminal one bar is redrawn in place; elsewhere (CI logs, pipes) each stage prints one
plain line when it starts and one at every tenth of its work, so a log shows that a long job
moves without filling up with carriage returns.
"""

from __future__ import annotations

import sys
import time

class Progress:
    """A progress bar on stderr (a redrawn bar on a terminal, one line per stage otherwise)."""

    def __init__(self, enabled: bool = True, stream=None, stages=()):
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.stages = tuple(stages)
        self.t0 = time.perf_counter()
        self.timings: dict[str, float] = {}
        self._stage = None
        self._t_stage = self.t0
        self._decile = -1
        self.suffix = ""  # extra text after the bar (e.g. the current loss)

    def stage(self, name: str) -> None:
        self._close_stage()
        self._stage, self._t_stage = name, time.perf_counter()
        self._decile = -1
        self.update(0, 1)

    def update(self, done: int, total: int) -> None:
        """Redraw the bar (terminal), or print a line at the start and every tenth (elsewhere)."""
        if not self.enabled or self._stage is None:
            return
        k = self.stages.index(self._stage) + 1 if self._stage in self.stages else 0
        width = 24
        frac = min(max(done / max(total, 1), 0.0), 1.0)
        fill = int(width * frac)
        bar = "#" * fill + "-" * (width - fill)
        count = f"[{k}/{len(self.stages)}] " if k else ""
        line = f"{count}[{bar}] {self._stage} ({time.perf_counter() - self.t0:5.1f} s){self.suffix}"
        if self.tty:
            self.stream.write("\r" + line.ljust(78))
            self.stream.flush()
        elif int(10 * frac) > self._decile:
            self._decile = int(10 * frac)
            self.stream.write(line + "\n")
            self.stream.flush()

    def _close_stage(self) -> None:
        if self._stage is not None:
            self.timings[self._stage] = time.perf_counter() - self._t_stage

    def finish(self) -> dict[str, float]:
        self._close_stage()
        self._stage = None
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
        return self.timings


__all__ = ["Progress"]
