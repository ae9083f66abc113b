"""Progress for long loops: a tqdm bar on a terminal, a periodic log line without one."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger(__name__)


def progress_bar(iterable, *, total: int, desc: str, enabled: bool | None):
    """A tqdm bar over ``iterable``; ``enabled=None`` shows it when stderr is a terminal."""
    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(iterable, total=total, desc=desc, disable=not show, leave=False, dynamic_ncols=True)


HEARTBEAT_SECONDS = 60.0


class Heartbeat:
    """Without a progress bar (output to a file, CI), a log line every ``HEARTBEAT_SECONDS`` so the log
    shows how far an epoch has got and how fast it goes."""

    def __init__(self, desc: str, total: int, enabled: bool):
        self.desc, self.total, self.enabled = desc, total, enabled
        self.start = self.last = time.perf_counter()

    def beat(self, step: int, images: int, loss: float) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self.last < HEARTBEAT_SECONDS:
            return
        self.last = now
        rate = images / (now - self.start)
        log.info("%s: step %d/%d, loss %.4f, %.1f img/s", self.desc, step, self.total, loss, rate)
