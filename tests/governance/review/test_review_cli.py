"""`govrisk db upgrade`, `users create|disable|enable|sign-out|set-password|tokens|revoke-token`,
`queue load`, `suggestions load`, `labels export`."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from features.contract import validate_table
from governance.review import queue
from governance.review.db import make_engine, make_session_factory
from governance.review.users import authenticate
from govrisk import build_app
from tests.governance.review.test_review_db import HEAD


@pytest.fixture
def cli() -> typer.Typer:
    return build_app()


@pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)
def test_first_admin_queue_and_label_export(
    cli: typer.Typer, review_db_url: str, tmp_path: Path, review_data: SimpleNamespace
) -> None:
    runner = CliRunner()
    db = ["--database-url", review_db_url]
    upgraded = runner.invoke(cli, ["db", "upgrade", *db])
    assert upgraded.exit_code == 0 and f"-> {HEAD}" in upgraded.output
    created = runner.invoke(
        cli,
        ["users", "create", "--username", "root", "--role", "admin", "--password-stdin", *db],
        input="a very long password\n",
    )
    assert created.exit_code == 0, created.output
    weak = runner.invoke(
        cli, ["users", "create", "--username", "xy", "--role", "admin", "--password", "short", *db]
    )
    assert weak.exit_code == 2 and "at least 10" in weak.output
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


@pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)
def test_admins_offboard_users_and_revoke_tokens(cli: typer.Typer, review_db_url: str) -> None:
    from governance.review.orm import ApiToken, User
    from governance.review.users import session_stamp, user_for_token

    runner = CliRunner()
    db = ["--database-url", review_db_url]
    created = runner.invoke(
        cli,
        ["users", "create", "--username", "ana", "--role", "moderator", "--password-stdin", *db],
        input="a very long password\n",
    )
    assert created.exit_code == 0, created.output
    issued = runner.invoke(cli, ["users", "token", "--username", "ana", "--name", "laptop", *db])
    assert issued.exit_code == 0
    secret = issued.output.strip()
    engine = make_engine(review_db_url)
    factory = make_session_factory(engine)

    def stamp() -> str:
        with factory() as session:
            user = session.scalar(sa.select(User).where(User.username == "ana"))
            assert user is not None
            return session_stamp(user)

    def token_user() -> str | None:
        with factory() as session:
            user = user_for_token(session, secret)
            return user.username if user is not None else None

    first = stamp()
    assert token_user() == "ana"
    assert runner.invoke(cli, ["users", "disable", "--username", "ana", *db]).exit_code == 0
    assert token_user() is None
    enabled = runner.invoke(cli, ["users", "enable", "--username", "ana", *db])
    assert enabled.exit_code == 0 and "enabled" in enabled.output
    assert token_user() == "ana" and stamp() != first  # old browser sessions stay ended
    second = stamp()
    signed_out = runner.invoke(cli, ["users", "sign-out", "--username", "ana", *db])
    assert signed_out.exit_code == 0 and stamp() != second
    changed = runner.invoke(
        cli,
        ["users", "set-password", "--username", "ana", "--password-stdin", *db],
        input="another long password\n",
    )
    assert changed.exit_code == 0, changed.output
    with factory() as session:
        assert authenticate(session, "ana", "another long password") is not None
        token_id = session.scalar(sa.select(ApiToken.id))
    listed = runner.invoke(cli, ["users", "tokens", "--username", "ana", *db])
    assert listed.exit_code == 0 and "laptop" in listed.output and "active" in listed.output
    assert secret not in listed.output
    revoked = runner.invoke(cli, ["users", "revoke-token", "--id", str(token_id), *db])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert token_user() is None
    again = runner.invoke(cli, ["users", "revoke-token", "--id", str(token_id), *db])
    assert again.exit_code == 0 and "already revoked" in again.output
    listed = runner.invoke(cli, ["users", "tokens", "--username", "ana", *db])
    assert "revoked" in listed.output
    missing = runner.invoke(cli, ["users", "revoke-token", "--id", "999", *db])
    assert missing.exit_code == 2 and "no API token with id 999" in missing.output
    unknown = runner.invoke(cli, ["users", "disable", "--username", "nobody", *db])
    assert unknown.exit_code == 2
    engine.dispose()
