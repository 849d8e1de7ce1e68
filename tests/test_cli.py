"""The `govrisk` command: every command and group explains itself with --help."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from govrisk import build_app


def _walk(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [path]
    for name, sub in getattr(command, "commands", {}).items():
        paths.extend(_walk(sub, (*path, name)))
    return paths


def test_every_command_has_help() -> None:
    root = typer.main.get_command(build_app())
    paths = _walk(root)
    assert len(paths) > 1, "no subcommands registered"
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(build_app(), [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output
        command = root
        for name in path:
            command = command.commands[name]
        assert (command.help or "").strip(), f"`govrisk {' '.join(path)}` has no help text"


def test_data_validate_reports_contract_errors(tmp_path: Path) -> None:
    (tmp_path / "tables").mkdir()
    result = CliRunner().invoke(build_app(), ["data", "validate", "--data", str(tmp_path)])
    assert result.exit_code == 1
    assert "table file not found" in result.output


def test_data_validate_without_tables_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(build_app(), ["data", "validate", "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert "has no tables/ folder" in result.stderr


def _command_at(root: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        root = root.commands[name]
    return root


def test_help_texts_survive_the_markdown_renderer() -> None:
    # --help renders markdown: `<id>` would vanish as an HTML tag ("strategies/@v.yaml")
    root = typer.main.get_command(build_app())
    eaten = []
    for path in _walk(root):
        command = _command_at(root, path)
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        eaten += [(path, t) for t in texts if re.search(r"<[A-Za-z][^>]*>", t)]
    assert eaten == []
