"""Sign-in throttle: refuse attempts for a username or client address after repeated failures.

Failures are counted in a moving window per key, in this process's memory only. Several
processes (uvicorn workers, replicas) each count on their own.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class SignInThrottle:
    """At most `max_failures` failed sign-ins per username and per client within `window_seconds`.

    Usernames are compared case-insensitively. A key at its limit is refused until its oldest
    failure leaves the window; refused attempts are not counted. A success clears the
    username's failures (not the client's). `clock` returns seconds (monotonic by default).
    """

    def __init__(
        self,
        *,
        max_failures: int = 5,
        window_seconds: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1:
            raise ValueError(f"max_failures: use 1 or more (got {max_failures})")
        if window_seconds <= 0:
            raise ValueError(f"window_seconds: use a positive number (got {window_seconds})")
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._next_sweep = -math.inf

    def retry_after(self, *, username: str, client: str | None) -> float:
        """Seconds until this username and client may try again; 0.0 means now."""
        with self._lock:
            now = self.clock()
            return max(self._wait(key, now) for key in self._keys(username, client))

    def record_failure(self, *, username: str, client: str | None) -> None:
        """Count a failed sign-in against the username and the client."""
        with self._lock:
            now = self.clock()
            for key in self._keys(username, client):
                self._failures.setdefault(key, deque(maxlen=self.max_failures)).append(now)
            if now >= self._next_sweep:
                self._sweep(now)

    def record_success(self, *, username: str) -> None:
        """Forget the username's failures."""
        with self._lock:
            self._failures.pop(_user_key(username), None)

    def _keys(self, username: str, client: str | None) -> list[str]:
        keys = [_user_key(username)]
        if client:
            keys.append(f"client:{client}")
        return keys

    def _wait(self, key: str, now: float) -> float:
        times = self._failures.get(key)
        if times is None or len(times) < self.max_failures:
            return 0.0
        # The deque keeps the newest max_failures times: the key is blocked while the oldest of
        # them is still inside the window.
        return max(0.0, times[0] + self.window_seconds - now)

    def _sweep(self, now: float) -> None:
        # Drop keys whose newest failure left the window, at most once per window, so memory
        # holds only keys that failed recently however many usernames are tried.
        horizon = now - self.window_seconds
        for key in [k for k, times in self._failures.items() if times[-1] <= horizon]:
            del self._failures[key]
        self._next_sweep = now + self.window_seconds


def _user_key(username: str) -> str:
    return f"user:{username.strip().casefold()}"
