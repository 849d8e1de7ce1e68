"""The `govrisk` command: assembles the subcommands each package owns."""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any, NoReturn

import click
import typer
from typer.core import TyperGroup

#: Packages whose `cli.register(app)` adds their subcommands, in help order.
_COMMAND_MODULES = (
    "experiments.cli",
    "features.cli",
    "training.cli",
    "models.cli",
    "serving.cli",
    "governance.cli",
    "governance.review.cli",
    "governance.audit.cli",
    "governance.experiments.cli",
    "experiments.audit_eval_cli",
    "experiments.experiment_eval_cli",
    "governance.monitoring.cli",
    "experiments.monitoring_eval_cli",
    "experiments.demo",
)


#: A command talks to an MLflow server once or twice: fail in seconds, not after MLflow's
#: default 7 retries with exponential backoff (about 4 minutes on a refused connection).
_MLFLOW_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}

#: Lines of an error message shown before "(N more lines with --verbose)".
_ERROR_LINES = 2


class _OneLineErrors(TyperGroup):
    """The root group: any failure below it is one short message on stderr and exit code 2.

    Usage errors (a bad option value) and exceptions a command lets through (an unreadable
    file, a database that cannot be reached, a missing model) are reported the same way; the
    traceback is shown only with `govrisk --verbose`.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except (click.ClickException, typer.TyperException) as err:
            # A message written for the user (ours, or typer's own click's usage errors): no
            # traceback to hide, --verbose shows it whole.
            limit = None if ctx.params.get("verbose") else _ERROR_LINES
            message = getattr(err, "format_message", err.__str__)()
            _exit_with(message, _help_hint(err), limit=limit)
        except Exception as err:
            if ctx.params.get("verbose"):
                raise
            _exit_with(_describe(err), "run `govrisk --verbose ...` for the traceback")


def _describe(err: Exception) -> str:
    """The error's own message; its type where the message alone would not say what failed."""
    text = str(err).strip()
    ours = type(err).__module__.split(".")[0] in _COMMAND_PACKAGES
    if ours and text:
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _help_hint(err: Exception) -> str | None:
    """Usage errors point at the command's help; other messages already say the fix."""
    if not hasattr(err, "ctx"):  # click's and typer's UsageError carry the command's context
        return None
    sub = err.ctx
    path = sub.command_path if sub is not None else "govrisk"
    return f"see `{path} --help`"


def _exit_with(message: str, hint: str | None, *, limit: int | None = _ERROR_LINES) -> NoReturn:
    lines = [line for line in message.splitlines() if line.strip()] or ["failed"]
    shown = lines[:limit]
    if len(lines) > len(shown):
        shown.append(f"  ... {len(lines) - len(shown)} more lines with --verbose")
    if hint:
        shown[-1] = f"{shown[-1]} ({hint})"
    typer.echo("error: " + "\n".join(shown), err=True)
    raise typer.Exit(2)


#: Top-level packages whose exceptions carry messages written for users.
_COMMAND_PACKAGES = frozenset(
    {"features", "training", "models", "serving", "governance", "experiments"}
)


def build_app() -> typer.Typer:
    """Assemble the root Typer app from every package's subcommands."""
    app = typer.Typer(
        name="govrisk",
        help=(
            "govrisk: features, risk models, explanations and strategy audits for "
            "e-commerce traffic channel governance.\n\n"
            "Start with `govrisk demo --out DIR` to run the whole pipeline on a simulated "
            "marketplace."
        ),
        no_args_is_help=True,
        cls=_OneLineErrors,
        pretty_exceptions_show_locals=False,
        rich_markup_mode="markdown",
    )

    @app.callback()
    def _root(
        verbose: bool = typer.Option(
            False, "--verbose", "-v", help="Log debug messages; on failure, show the traceback."
        ),
    ) -> None:
        logging.basicConfig(
            level=logging.DEBUG if verbose else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            force=True,  # a second invocation in one process logs to its own stderr
        )
        # Alembic narrates every migration step at INFO; commands say what changed themselves.
        logging.getLogger("alembic").setLevel(logging.DEBUG if verbose else logging.WARNING)
        for name, value in _MLFLOW_CLIENT_DEFAULTS.items():
            os.environ.setdefault(name, value)

    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).register(app)
    return app


def main() -> None:
    """Entry point of the `govrisk` console script."""
    # Idle OpenMP threads (LightGBM) sleep instead of spinning: on a busy 2-core machine
    # spinning made two-thread fits ~6x slower than one thread. Must precede the first import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    build_app()()


if __name__ == "__main__":
    main()
