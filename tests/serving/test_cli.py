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


def _govrisk(*args: str) -> Any:
    from govrisk import build_app

    return CliRunner().invoke(build_app(), list(args))


@pytest.fixture
def no_tracking_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with no MLflow store and no MLFLOW_TRACKING_URI."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        (
            "score",
            "--model",
            "models:/govrisk-listing-any@champion",
            "--input",
            "x.parquet",
            "--output",
            "out",
        ),
        ("serve", "--model", "models:/govrisk-listing-any@champion"),
        ("models", "list"),
        ("models", "promote", "govrisk-listing-any"),
        ("audit", "--data", "data", "--out", "audit"),
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_a_missing_tracking_store_is_one_line_and_creates_nothing(
    no_tracking_store: Path, args: tuple[str, ...]
) -> None:
    import pandas as pd

    pd.DataFrame({"item_id": ["a"]}).to_parquet(no_tracking_store / "x.parquet")  # a valid input
    (no_tracking_store / "data" / "tables").mkdir(parents=True)  # the audit checks data first
    result = _govrisk(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) <= 3 and "no MLflow tracking store" in result.output, result.output
    assert "--tracking-uri" in result.output and "Traceback" not in result.output
    assert not (no_tracking_store / "mlflow.db").exists()


def test_the_same_tracking_option_on_every_model_command() -> None:
    for command in (("score",), ("serve",), ("audit",), ("models", "list"), ("train",)):
        result = _govrisk(*command, "--help")
        assert "--tracking-uri" in result.output, command


@pytest.mark.parametrize(
    "content", [b"item_id,p\n1,0.5\n", b"PAR1\x00\x01truncated"], ids=["csv", "truncated"]
)
def test_an_unreadable_input_is_one_line(
    no_tracking_store: Path, tmp_path: Path, content: bytes
) -> None:
    from tests.models.bundle_factory import make_frame, train_bundle

    frame, y = make_frame(200, seed=1)
    bundle_dir = train_bundle(frame, y, n_trees=5).save(tmp_path / "bundle")
    fake = tmp_path / "features.parquet"
    fake.write_bytes(content)
    result = _govrisk("score", "--model", str(bundle_dir), "--input", str(fake), "--output", "o")
    assert result.exit_code == 2, result.output
    assert "is not a readable Parquet file" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 3


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
