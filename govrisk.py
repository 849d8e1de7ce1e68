"""The `govrisk` command: assembles the subcommands each package owns."""

from __future__ import annotations

import importlib
import logging
import os

import typer

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
    "experiments.audit_eval_cli",
    "experiments.monitoring_eval_cli",
    "experiments.demo",
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
        pretty_exceptions_show_locals=False,
        rich_markup_mode="markdown",
    )

    @app.callback()
    def _root(
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    ) -> None:
        logging.basicConfig(
            level=logging.DEBUG if verbose else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )

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
