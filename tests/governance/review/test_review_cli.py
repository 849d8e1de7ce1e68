"""`govrisk db upgrade`, `users create`, `queue load`, `suggestions load`, `labels export`."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from features.contract import validate_table
from governance.review import queue
from governance.review.cli import register
from governance.review.db import make_engine, make_session_factory
from governance.review.users import authenticate


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)
def test_first_admin_queue_and_label_export(
    cli: typer.Typer, review_db_url: str, tmp_path: Path, review_data: SimpleNamespace
) -> None:
    runner = CliRunner()
    db = ["--database-url", review_db_url]
    upgraded = runner.invoke(cli, ["db", "upgrade", *db])
    assert upgraded.exit_code == 0 and "-> 0001" in upgraded.output
    created = runner.invoke(
        cli,
        ["users", "create", "--username", "root", "--role", "admin", "--password-stdin", *db],
        input="a very long password\n",
    )
    assert created.exit_code == 0, created.output
    weak = runner.invoke(
        cli, ["users", "create", "--username", "xy", "--role", "admin", "--password", "short", *db]
    )
    assert weak.exit_code == 1 and "at least 10" in weak.output
    flags_path = tmp_path / "flags.parquet"
    review_data.make_flags(8, seed=41).to_parquet(flags_path)
    loaded = runner.invoke(cli, ["queue", "load", "--flags", str(flags_path), *db])
    assert loaded.exit_code == 0, loaded.output
    assert "inserted" in loaded.output and "8" in loaded.output
    suggestions_path = tmp_path / "suggestions.parquet"
    review_data.make_suggestions(2).to_parquet(suggestions_path)
    suggested = runner.invoke(cli, ["suggestions", "load", "--path", str(suggestions_path), *db])
    assert suggested.exit_code == 0, suggested.output

    engine = make_engine(review_db_url)
    with make_session_factory(engine)() as session:
        admin = authenticate(session, "root", "a very long password")
        assert admin is not None and admin.role == "admin"
        claim = queue.claim_next(session, admin, lease_seconds=60)
        assert claim is not None
        queue.submit_verdict(session, admin, claim.item.id, verdict="violating", client_key="c")
        session.commit()
    engine.dispose()
    out = tmp_path / "labels.parquet"
    exported = runner.invoke(cli, ["labels", "export", "--out", str(out), *db])
    assert exported.exit_code == 0 and "wrote 1 audit labels" in exported.output
    labels = validate_table("audit_labels", pd.read_parquet(out))
    assert labels["reviewer_id"].tolist() == ["root"]
