"""`govrisk serve`: how uvicorn is started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner


def _serve(monkeypatch: pytest.MonkeyPatch, *args: str) -> dict[str, Any]:
    import typer
    import uvicorn

    from serving.cli import register

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["serve", *args])
    assert result.exit_code == 0, result.output
    assert len(calls) == 1
    return calls[0]


def test_serve_logs_requests_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert _serve(monkeypatch, "--data-dir", str(tmp_path))["access_log"] is True
    quiet = _serve(monkeypatch, "--data-dir", str(tmp_path), "--no-access-log")
    assert quiet["access_log"] is False
    assert quiet["workers"] == 1


def test_uvicorn_picks_the_compiled_http_parser_and_event_loop() -> None:
    import uvicorn
    from fastapi import FastAPI
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    config = uvicorn.Config(FastAPI())
    config.load()
    assert config.http_protocol_class is HttpToolsProtocol
    factory = config.get_loop_factory()
    assert factory is not None and factory.__module__.startswith("uvloop"), factory


@pytest.mark.parametrize("content", [b"", b"item_id,price\nA,1\n", b"PAR1" + b"\0" * 100])
def test_score_on_an_unreadable_input_is_one_line_and_exit_2(
    tmp_path: Path, content: bytes
) -> None:
    from govrisk import build_app

    broken = tmp_path / "frame.parquet"
    broken.write_bytes(content)
    for path in (broken, tmp_path / "missing.parquet"):
        result = CliRunner().invoke(
            build_app(),
            ["score", "--input", str(path), "--output", str(tmp_path / "out"), "--model", "x"],
            env={"COLUMNS": "200"},
        )
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and str(path.name) in lines[0], result.output
        assert "Traceback" not in result.output
