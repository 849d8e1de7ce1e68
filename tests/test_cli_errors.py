"""Every `govrisk` command answers bad input with a short message and exit code 2.

One case per command: a missing or corrupt file, a directory that cannot be written, a
database that cannot be reached, an unknown name. Each must give at most three lines on
stderr, name what was wrong, exit 2 and print no traceback (`--verbose` shows it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from govrisk import build_app

#: Nothing listens on port 1: every connection is refused at once.
UNREACHABLE_DB = "postgresql+psycopg://nobody@127.0.0.1:1/govrisk"
#: What a message about that database must show of its URL.
DB_NAMED = "127.0.0.1:1/govrisk"


@dataclass(frozen=True)
class Case:
    """Arguments (with {tmp} for the case's directory) and text the message must contain."""

    args: tuple[str, ...]
    names: str


def _db(*args: str) -> tuple[str, ...]:
    return (*args, "--database-url", UNREACHABLE_DB)


def _sqlite(*args: str) -> tuple[str, ...]:
    return (*args, "--database-url", "sqlite:///{tmp}/review.db")


CASES: dict[str, Case] = {
    "simulate": Case(("simulate", "--out", "{tmp}/a-file"), "a-file"),
    "train": Case(("train", "--spec", "{tmp}/missing.yaml"), "missing.yaml"),
    "serve": Case(("serve", *_db(), "--data-dir", "{tmp}"), DB_NAMED),
    "score": Case(
        (
            "score",
            "--input",
            "{tmp}/corrupt.parquet",
            "--output",
            "{tmp}/o.parquet",
            "--model",
            "{tmp}/no-model",
        ),
        "corrupt.parquet",
    ),
    "audit": Case(("audit", "--data", "{tmp}/nowhere", "--out", "{tmp}/out"), "nowhere"),
    "evaluate-audit": Case(("evaluate-audit", "--seeds", "x"), "seeds"),
    "evaluate-byo": Case(("evaluate-byo", "--out", "{tmp}/a-file/x"), "a-file"),
    "evaluate-experiments": Case(("evaluate-experiments", "--out", "{tmp}/a-file/x"), "a-file"),
    "monitor": Case(("monitor", "--data", "{tmp}/nowhere", "--out", "{tmp}/out"), "nowhere"),
    "evaluate-monitoring": Case(("evaluate-monitoring", "--seeds", "x"), "seeds"),
    "demo": Case(("demo", "--out", "{tmp}/a-file", "--no-serve"), "a-file"),
    "data validate": Case(("data", "validate", "--data", "{tmp}/nowhere"), "nowhere"),
    "data import": Case(
        ("data", "import", "--mapping", "{tmp}/m.yaml", "--out", "{tmp}/o"), "m.yaml"
    ),
    "data partition": Case(
        ("data", "partition", "--data", "{tmp}/nowhere", "--out", "{tmp}/p", "--parts", "2"),
        "nowhere",
    ),
    "data contract": Case(("data", "contract", "--out", "{tmp}/a-file/x.md"), "a-file"),
    "features build": Case(
        ("features", "build", "--data", "{tmp}/nowhere", "--out", "{tmp}/f"), "nowhere"
    ),
    "features list": Case(("features", "list", "--entity", "planet"), "planet"),
    "features docs": Case(("features", "docs", "--out", "{tmp}/a-file/x.md"), "a-file"),
    "features byo": Case(
        ("features", "byo", "--spec", "{tmp}/missing.yaml", "--out", "{tmp}/o"), "missing.yaml"
    ),
    "models list": Case(("models", "list", "--tracking-uri", "http://127.0.0.1:1"), "127.0.0.1:1"),
    "models promote": Case(
        ("models", "promote", "nosuchmodel", "--tracking-uri", "{tmp}/mlruns"), "mlruns"
    ),
    "strategies list": Case(
        ("strategies", "list", "--data", "{tmp}/bad-strategies"), "broken.yaml"
    ),
    "strategies show": Case(
        ("strategies", "show", "nosuch", "--data", "{tmp}"), "strategies directory not found"
    ),
    "strategies validate": Case(
        ("strategies", "validate", "--data", "{tmp}/nowhere"), "strategies directory not found"
    ),
    "strategies backtest": Case(
        ("strategies", "backtest", "nosuch", "--data", "{tmp}"), "strategies directory not found"
    ),
    "db upgrade": Case(_db("db", "upgrade"), DB_NAMED),
    "users create": Case(
        _db("users", "create", "--username", "u", "--role", "moderator", "--password-stdin"),
        DB_NAMED,
    ),
    "users demo": Case(_db("users", "demo"), DB_NAMED),
    "users token": Case(_sqlite("users", "token", "--username", "nobody"), "nobody"),
    "users list": Case(_db("users", "list"), DB_NAMED),
    "users disable": Case(_sqlite("users", "disable", "--username", "nobody"), "nobody"),
    "users enable": Case(_sqlite("users", "enable", "--username", "nobody"), "nobody"),
    "users sign-out": Case(_sqlite("users", "sign-out", "--username", "nobody"), "nobody"),
    "users set-password": Case(
        _sqlite("users", "set-password", "--username", "nobody", "--password-stdin"), "nobody"
    ),
    "users tokens": Case(_sqlite("users", "tokens", "--username", "nobody"), "nobody"),
    "users revoke-token": Case(_sqlite("users", "revoke-token", "--id", "99"), "99"),
    "queue load": Case(
        _sqlite("queue", "load", "--flags", "{tmp}/corrupt.parquet"), "corrupt.parquet"
    ),
    "suggestions load": Case(
        _sqlite("suggestions", "load", "--path", "{tmp}/missing.parquet"), "missing.parquet"
    ),
    "labels export": Case(_db("labels", "export", "--out", "{tmp}/labels.parquet"), DB_NAMED),
    "labels draw": Case(
        ("labels", "draw", "--dataset", "{tmp}/nowhere", "--size", "5", "--out", "{tmp}/l.pq"),
        "nowhere",
    ),
    "experiments create": Case(
        _sqlite("experiments", "create", "--file", "{tmp}/missing.yaml"), "missing.yaml"
    ),
    "experiments list": Case(_db("experiments", "list"), DB_NAMED),
    "experiments show": Case(_sqlite("experiments", "show", "999"), "999"),
    "experiments analyze": Case(
        _sqlite("experiments", "analyze", "999", "--data", "{tmp}"), "has no tables/ folder"
    ),
    "experiments stop": Case(_sqlite("experiments", "stop", "999", "--reason", "r"), "999"),
    "alerts load": Case(
        ("alerts", "load", "--path", "{tmp}/missing.parquet", "--data-dir", "{tmp}"),
        "missing.parquet",
    ),
}


def _leaf_commands() -> list[str]:
    def walk(command: object, path: tuple[str, ...]) -> list[str]:
        subs = getattr(command, "commands", None)
        if not subs:
            return [" ".join(path)]
        return [leaf for name, sub in subs.items() for leaf in walk(sub, (*path, name))]

    return walk(typer.main.get_command(build_app()), ())


def test_every_command_has_a_bad_input_case() -> None:
    assert sorted(_leaf_commands()) == sorted(CASES)


@pytest.fixture
def bad_inputs(tmp_path: Path) -> Path:
    (tmp_path / "a-file").write_text("not a directory\n")
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet")
    broken = tmp_path / "bad-strategies" / "strategies"
    broken.mkdir(parents=True)
    (broken / "broken.yaml").write_text("id: [unclosed\n")
    return tmp_path


@pytest.mark.parametrize("command", sorted(CASES))
def test_bad_input_is_one_short_message_and_exit_2(command: str, bad_inputs: Path) -> None:
    case = CASES[command]
    args = [arg.replace("{tmp}", str(bad_inputs)) for arg in case.args]
    result = CliRunner().invoke(build_app(), args, input="password-1234\npassword-1234\n")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (command, result.output, result.exception)
    assert "Traceback" not in result.output
    assert 1 <= len(lines) <= 3, lines
    assert case.names in result.stderr.replace("\n", ""), lines


def test_verbose_shows_the_traceback(bad_inputs: Path) -> None:
    """An unexpected error (here a database that refuses connections) is re-raised whole."""
    args = ["--verbose", "users", "list", "--database-url", UNREACHABLE_DB]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "DatabaseUnreachableError"


def test_verbose_shows_a_long_message_whole(tmp_path: Path) -> None:
    """Messages written for users are cut to three lines; --verbose prints every line."""
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\n" + "".join(f"key_{i}: 1\n" for i in range(6)))
    short = CliRunner().invoke(build_app(), ["train", "--spec", str(spec)])
    whole = CliRunner().invoke(build_app(), ["--verbose", "train", "--spec", str(spec)])
    assert short.exit_code == whole.exit_code == 2
    assert "more lines with --verbose" in short.stderr
    assert len(short.stderr.splitlines()) == 3
    assert all(f"key_{i}: unknown key" in whole.stderr for i in range(6)), whole.stderr
