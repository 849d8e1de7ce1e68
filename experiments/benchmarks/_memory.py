"""Peak resident memory of the benchmark's own process, sampled while a phase runs."""

from __future__ import annotations

import os
import threading


class PeakRss:
    """Peak resident memory of this process, sampled from /proc every `every_s` seconds."""

    def __init__(self, every_s: float = 0.02) -> None:
        self.peak_bytes = 0
        self._every = every_s
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._rss())
            self._stop.wait(self._every)

    def __enter__(self) -> PeakRss:
        self.peak_bytes = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._rss())
