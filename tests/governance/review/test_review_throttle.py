"""Sign-in throttle: moving window per username and per client, reset on success."""

from __future__ import annotations

import threading

import pytest

from governance.review.settings import ReviewSettings
from governance.review.throttle import SignInThrottle


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _throttle(clock: _Clock, max_failures: int = 3) -> SignInThrottle:
    return SignInThrottle(max_failures=max_failures, window_seconds=60.0, clock=clock)


def test_the_oldest_failure_leaving_the_window_frees_one_attempt() -> None:
    clock = _Clock()
    throttle = _throttle(clock)
    for _ in range(3):
        assert throttle.retry_after(username="ana", client="1.1.1.1") == 0.0
        throttle.record_failure(username="ana", client="1.1.1.1")
        clock.now += 10
    assert throttle.retry_after(username=" ANA", client="2.2.2.2") == pytest.approx(30.0)
    clock.now = 160.0  # the first failure (t=100) leaves the window
    assert throttle.retry_after(username="ana", client="2.2.2.2") == 0.0
    throttle.record_failure(username="ana", client="2.2.2.2")
    assert throttle.retry_after(username="ana", client="2.2.2.2") == pytest.approx(10.0)


def test_a_client_is_locked_for_every_username_and_others_are_not() -> None:
    throttle = _throttle(_Clock())
    for name in ("ana", "bo", "cy"):
        throttle.record_failure(username=name, client="1.1.1.1")
    # The client's three failures (all at t=100) lock it for the whole 60 s window.
    assert throttle.retry_after(username="dee", client="1.1.1.1") == pytest.approx(60.0)
    assert throttle.retry_after(username="dee", client="2.2.2.2") == 0.0
    assert throttle.retry_after(username="dee", client=None) == 0.0


def test_a_success_clears_the_username_but_not_the_client() -> None:
    throttle = _throttle(_Clock())
    for _ in range(3):
        throttle.record_failure(username="ana", client="1.1.1.1")
    throttle.record_success(username="Ana")
    assert throttle.retry_after(username="ana", client="2.2.2.2") == 0.0
    assert throttle.retry_after(username="ana", client="1.1.1.1") == pytest.approx(60.0)


def test_keys_that_failed_long_ago_are_forgotten() -> None:
    clock = _Clock()
    throttle = _throttle(clock)
    for n in range(50):
        throttle.record_failure(username=f"user{n}", client=None)
    clock.now += 61
    throttle.record_failure(username="late", client=None)
    assert throttle.retry_after(username="user0", client=None) == 0.0
    assert set(throttle._failures) == {"user:late"}


def test_concurrent_failures_are_all_counted() -> None:
    throttle = SignInThrottle(max_failures=4_000, window_seconds=60.0)

    def fail() -> None:
        for _ in range(500):
            throttle.record_failure(username="ana", client=None)

    threads = [threading.Thread(target=fail) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Exactly 4,000 failures: every one counted (a lost update would leave it unthrottled) ...
    assert len(throttle._failures["user:ana"]) == 4_000
    assert 0.0 < throttle.retry_after(username="ana", client=None) <= 60.0
    # ... and one short of the limit is not throttled, so the check above is the boundary.
    throttle._failures["user:ana"].popleft()
    assert throttle.retry_after(username="ana", client=None) == 0.0


def test_bad_limits_are_refused_and_settings_tune_them(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="max_failures"):
        SignInThrottle(max_failures=0)
    with pytest.raises(ValueError, match="window_seconds"):
        SignInThrottle(window_seconds=0)
    for name in ("GOVRISK_LOGIN_MAX_FAILURES", "GOVRISK_LOGIN_WINDOW_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    assert (ReviewSettings().login_max_failures, ReviewSettings().login_window_seconds) == (5, 900)
    monkeypatch.setenv("GOVRISK_LOGIN_MAX_FAILURES", "10")
    monkeypatch.setenv("GOVRISK_LOGIN_WINDOW_SECONDS", "120")
    settings = ReviewSettings()
    assert (settings.login_max_failures, settings.login_window_seconds) == (10, 120)
