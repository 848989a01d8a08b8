"""Where the time from launch to the first optimizer step goes (interpreter and imports, the data scan, the model,
latent caching, set-up, the first step), printed once after that step and logged as a `startup` event: the
figure a user waits through before anything trains."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from ..plugins import Callback, LoopContext, StepResult


_FIRST = [True]  # only the process's first run counts from launch (a workflow trains several stages in one)


def seconds_since_launch() -> float | None:
    """Seconds since this process started (Linux: /proc), so the interpreter's start and the imports count too;
    None elsewhere, or when /proc gives no believable figure (a virtualized uptime)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        seconds = uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time in clock ticks
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return seconds if 0 <= seconds < 3600 else None


class StartupPhases(Callback):
    """`mark(name)` ends a phase; the first optimizer step ends the last one and the report is said once."""

    def __init__(self) -> None:
        self.say: Callable[[str], None] = print  # the run's printer, once it has one
        self.before = seconds_since_launch() if _FIRST[0] else None  # interpreter start and imports, until now
        _FIRST[0] = False
        self.phases: list[tuple[str, float]] | None = [] if self.before is None else [("start-up and imports",
                                                                                        self.before)]
        self.last = time.perf_counter()

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        if self.phases is not None:
            self.phases.append((name, now - self.last))
        self.last = now

    def on_step_end(self, ctx: LoopContext, result: StepResult) -> None:
        if self.phases is None:
            return
        self.mark("the first step (with its plug-ins' work)")
        total = sum(seconds for _, seconds in self.phases)
        since = "launch" if self.before is not None else "the start of this training"
        self.say(f"start-up: {total:.1f} s from {since} to the first optimizer step (" +
                 ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.phases) + ")")
        ctx.log_event("startup", seconds=round(total, 3),
                      phases={name: round(seconds, 3) for name, seconds in self.phases})
        self.phases = None
