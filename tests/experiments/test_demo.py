"""`govrisk demo`'s plan: every step reads and writes where the next one looks."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from experiments.demo import plan_steps, serve_step


def _option(args: tuple[str, ...], name: str) -> str:
    return args[args.index(name) + 1]


def test_the_service_serves_the_strategy_set_the_audit_read(tmp_path: Path) -> None:
    steps = plan_steps(tmp_path, listings=500, days=14, seed=0)
    simulate = next(s for s in steps if s.args[0] == "simulate")  # the world the audit reads
    (audit,) = [s for s in steps if s.args[0] == "audit"]
    server = serve_step(tmp_path, host="127.0.0.1", port=8000)
    data = Path(_option(audit.args, "--data"))
    assert Path(_option(simulate.args, "--out")) / "data" == data
    assert Path(_option(server.args, "--strategies-dir")) == data / "strategies"
    assert Path(_option(server.args, "--marketplace-dir")) == data
    (features,) = [s for s in steps if s.args[:2] == ("features", "build")]
    assert _option(server.args, "--features-dir") == _option(features.args, "--out")
    assert Path(_option(server.args, "--audit-dir")) == Path(_option(audit.args, "--out"))


def _wrapper(child_code: str) -> subprocess.Popen[str]:
    """A process running `serve_until_stopped` on a child that runs `child_code`."""
    code = (
        "import sys; from experiments.demo import serve_until_stopped; "
        f"sys.exit(serve_until_stopped([sys.executable, '-c', {child_code!r}]))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_sigterm_stops_the_served_demo_cleanly() -> None:
    """A service manager's SIGTERM reaches the service, and the stop is not a failure."""
    ready = "import sys, time; print('up', flush=True); time.sleep(60)"
    wrapper = _wrapper(ready)
    assert wrapper.stdout is not None
    assert wrapper.stdout.readline().strip() == "up"  # the service runs (handler installed)
    started = time.monotonic()
    wrapper.send_signal(signal.SIGTERM)
    _, err = wrapper.communicate(timeout=20)
    assert wrapper.returncode == 0, err
    assert time.monotonic() - started < 10


def test_a_service_that_crashes_is_still_a_failure() -> None:
    wrapper = _wrapper("import sys; sys.exit(3)")
    wrapper.communicate(timeout=30)
    assert wrapper.returncode == 3


def test_the_monitor_reads_the_audits_scores_of_every_promoted_model(tmp_path: Path) -> None:
    from experiments.demo import demo_spec_path
    from models.registry import model_name
    from training.spec import load_spec

    steps = plan_steps(tmp_path, listings=500, days=14, seed=0)
    (audit,) = [s for s in steps if s.args[0] == "audit"]
    (monitor,) = [s for s in steps if s.args[0] == "monitor"]
    scores = Path(_option(audit.args, "--out")) / "predictions.parquet"
    assert Path(_option(monitor.args, "--predictions")) == scores
    assert "--model" not in audit.args  # each policy's champion, else the any-violation one
    promoted = [
        a for s in steps if s.args[:2] == ("models", "promote") for a in s.args[2:] if a[0] != "-"
    ]
    spec = load_spec(demo_spec_path(), check_paths=False)
    trained = [model_name(e.value, p) for e, p in spec.target_pairs()]
    assert sorted(promoted) == sorted(trained) and len(set(promoted)) == len(promoted)
    first = next(s for s in steps if s.args[:2] == ("models", "promote"))
    assert first.args[2:] == ("govrisk-listing-any",)  # scoring needs it: no --if-trained
    others = [s for s in steps if s.args[:2] == ("models", "promote")][1]
    assert {"--if-trained", "--exit-zero"} <= set(others.args)  # a refusal does not stop it
