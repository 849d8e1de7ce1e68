"""`govrisk demo`'s plan: every step reads and writes where the next one looks."""

from __future__ import annotations

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
