"""`govrisk db|users|queue|suggestions|labels ...`: the review service's command-line pieces."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from governance.review.db import ReviewSession
    from governance.review.orm import User

db_app = typer.Typer(help="The review database (SQLite file or PostgreSQL).", no_args_is_help=True)
users_app = typer.Typer(help="Review service users, teams and API tokens.", no_args_is_help=True)
queue_app = typer.Typer(help="The moderation review queue.", no_args_is_help=True)
suggestions_app = typer.Typer(
    help="Strategy-change suggestions up for approval.", no_args_is_help=True
)
labels_app = typer.Typer(help="Moderator verdicts as audit labels.", no_args_is_help=True)

_DATABASE_HELP = "SQLAlchemy URL; default GOVRISK_DATABASE_URL or DATA_DIR/govrisk.db."


@contextmanager
def _session(database_url: str | None, data_dir: Path | None) -> Iterator[ReviewSession]:
    """A session on the migrated database named by the options or the environment, in one
    write unit of work: committed when the command's block ends, rolled back when it raises."""
    from governance.review.db import make_engine, make_session_factory, upgrade
    from governance.review.service import unit_of_work
    from governance.review.settings import ReviewSettings

    settings = ReviewSettings()
    if data_dir is not None:
        settings.data_dir = data_dir
    if database_url:
        settings.database_url = database_url
    engine = make_engine(settings.resolved_database_url(), pool_size=2)
    try:
        upgrade(engine)
        # The whole command is one unit of work (committed when it ends without an error),
        # safe next to a running service.
        with make_session_factory(engine)() as session, unit_of_work(session):
            yield session
    finally:
        engine.dispose()


#: The same session for other packages' commands that write to the review database.
review_session = _session


def _fail(err: Exception) -> click.ClickException:
    """The error as the one-line message the root command prints (exit code 2)."""
    return click.ClickException(str(err))


DatabaseOpt = Annotated[str | None, typer.Option("--database-url", help=_DATABASE_HELP)]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (default GOVRISK_DATA_DIR).")
]


@db_app.command("upgrade")
def db_upgrade(
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create or migrate the review database to the latest schema (safe to repeat)."""
    from governance.review.db import current_revision, make_engine, upgrade
    from governance.review.settings import ReviewSettings

    settings = ReviewSettings()
    if data_dir is not None:
        settings.data_dir = data_dir
    if database_url:
        settings.database_url = database_url
    url = settings.resolved_database_url()
    engine = make_engine(url, pool_size=1)
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    Console().print(
        f"database {engine.url.render_as_string(hide_password=True)}: "
        f"revision {before or 'empty'} -> {after}"
    )


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Option("--username", help="Login name (lowercase).")],
    role: Annotated[str, typer.Option("--role", help="moderator, pm, ml_engineer or admin.")],
    password: Annotated[
        str | None, typer.Option("--password", help="Prefer --password-stdin.")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    team: Annotated[str | None, typer.Option("--team", help="Team name (created if new).")] = None,
    team_policies: Annotated[
        str, typer.Option("--team-policies", help="Comma-separated policies routed to a new team.")
    ] = "",
    display_name: Annotated[str, typer.Option("--display-name")] = "",
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a user (the first admin comes from here)."""
    from governance.review import users
    from governance.review.errors import NotFoundError, ReviewError

    console = Console()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise _fail(ValueError("give --password-stdin (recommended) or --password"))
    with _session(database_url, data_dir) as session:
        try:
            team_row = None
            if team:
                try:
                    team_row = users.team_by_name(session, team)
                except NotFoundError:
                    policies = [p.strip() for p in team_policies.split(",") if p.strip()]
                    team_row = users.create_team(session, name=team, policies=policies)
            user = users.create_user(
                session,
                username=username,
                role=role,
                password=password,
                display_name=display_name,
                team=team_row,
            )
        except ReviewError as err:
            raise _fail(err) from err
    console.print(f"created {user.role.value} [bold]{user.username}[/bold] (id {user.id})")


@users_app.command("demo")
def users_demo(
    reset_passwords: Annotated[
        bool, typer.Option("--reset-passwords", help="Give existing demo users new passwords.")
    ] = False,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create demo teams and one user per role, and print their credentials."""
    from governance.review.demo import seed_demo_accounts

    with _session(database_url, data_dir) as session:
        accounts = seed_demo_accounts(session, reset_passwords=reset_passwords)
    table = Table(title="Demo accounts")
    for column in ("username", "role", "team", "password"):
        table.add_column(column)
    for account in accounts:
        table.add_row(
            account.username,
            account.role.value,
            account.team or "all (admin/granted)",
            account.password or "(unchanged; --reset-passwords)",
        )
    Console().print(table)


@users_app.command("token")
def users_token(
    username: Annotated[str, typer.Option("--username")],
    name: Annotated[str, typer.Option("--name", help="Label to tell tokens apart.")] = "cli",
    ttl_days: Annotated[
        float | None,
        typer.Option(
            "--ttl-days",
            help="Lifetime in days; default GOVRISK_TOKEN_TTL_DAYS (30), at most "
            "GOVRISK_TOKEN_ADMIN_MAX_TTL_DAYS (365).",
        ),
    ] = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Issue an API token for a user and print it once."""
    from governance.review import users
    from governance.review.errors import ReviewError
    from governance.review.settings import ReviewSettings
    from governance.review.vocabulary import Role

    console = Console()
    with _session(database_url, data_dir) as session:
        try:
            user = users.user_by_username(session, username)
            # The operator has the database: an admin's cap, whatever the user's role.
            days = ReviewSettings().token_lifetime().days_for(ttl_days, Role.ADMIN)
            _, secret = users.issue_token(session, user, name=name, ttl_days=days)
        except ReviewError as err:
            raise _fail(err) from err
    console.print(secret, soft_wrap=True, highlight=False)


@users_app.command("list")
def users_list(
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List users with their role and team."""
    import sqlalchemy as sa

    from governance.review.orm import User

    table = Table(title="Users")
    for column in ("username", "role", "team", "active"):
        table.add_column(column)
    with _session(database_url, data_dir) as session:
        for user in session.scalars(sa.select(User).order_by(User.username)):
            table.add_row(
                user.username,
                user.role.value,
                user.team.name if user.team else "–",
                "yes" if user.is_active else "no",
            )
    Console().print(table)


UsernameOpt = Annotated[str, typer.Option("--username", help="The user's login name.")]


def _change_user(
    username: str,
    database_url: str | None,
    data_dir: Path | None,
    change: Callable[[ReviewSession, User], None],
    done: str,
) -> None:
    """Apply `change` to one user in one committed unit of work, then print `done`."""
    from governance.review import users
    from governance.review.errors import ReviewError

    console = Console()
    with _session(database_url, data_dir) as session:
        try:
            user = users.user_by_username(session, username)
            change(session, user)
        except ReviewError as err:
            raise _fail(err) from err
    console.print(done)


def _set_active(
    username: str, active: bool, database_url: str | None, data_dir: Path | None
) -> None:
    from governance.review import users

    state = "enabled" if active else "disabled (page sessions ended; tokens refused)"
    _change_user(
        username,
        database_url,
        data_dir,
        lambda session, user: users.set_active(session, user, active, actor=None),
        f"[bold]{username}[/bold] {state}",
    )


@users_app.command("disable")
def users_disable(
    username: UsernameOpt, database_url: DatabaseOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Disable a user: no sign-in, no pages, no API tokens; their page sessions end."""
    _set_active(username, False, database_url, data_dir)


@users_app.command("enable")
def users_enable(
    username: UsernameOpt, database_url: DatabaseOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Enable a disabled user again (they sign in afresh; old browser sessions stay ended)."""
    _set_active(username, True, database_url, data_dir)


@users_app.command("sign-out")
def users_sign_out(
    username: UsernameOpt, database_url: DatabaseOpt = None, data_dir: DataDirOpt = None
) -> None:
    """End every page session of a user (a lost laptop); API tokens are revoked separately."""
    from governance.review import users

    _change_user(
        username,
        database_url,
        data_dir,
        lambda session, user: users.end_sessions(session, user, actor=None),
        f"every page session of [bold]{username}[/bold] ended",
    )


@users_app.command("set-password")
def users_set_password(
    username: UsernameOpt,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read the new password from standard input (else prompt)."
        ),
    ] = False,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Set a user's password (their page sessions end; API tokens stay valid)."""
    from governance.review import users

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    _change_user(
        username,
        database_url,
        data_dir,
        lambda session, user: users.set_password(session, user, password, actor=None),
        f"password of [bold]{username}[/bold] changed; their page sessions ended",
    )


@users_app.command("tokens")
def users_tokens(
    username: UsernameOpt, database_url: DatabaseOpt = None, data_dir: DataDirOpt = None
) -> None:
    """List a user's API tokens (id, name, prefix, dates, state); secrets are never shown."""
    from governance.review import users
    from governance.review.errors import ReviewError

    console = Console()
    table = Table(title=f"API tokens of {username}")
    for column in ("id", "name", "prefix", "created", "expires", "state"):
        table.add_column(column)
    with _session(database_url, data_dir) as session:
        try:
            user = users.user_by_username(session, username)
            for t in users.tokens_of(session, user):
                state = users.token_state(t).value
                if t.revoked_at is not None:
                    state += f" {t.revoked_at:%Y-%m-%d %H:%M}"
                table.add_row(
                    str(t.id),
                    t.name,
                    t.token_prefix + "…",
                    f"{t.created_at:%Y-%m-%d %H:%M}",
                    f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "never",
                    state,
                )
        except ReviewError as err:
            raise _fail(err) from err
    console.print(table)


@users_app.command("revoke-token")
def users_revoke_token(
    token_id: Annotated[int, typer.Option("--id", help="Token id from `govrisk users tokens`.")],
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Revoke an API token now (safe to repeat)."""
    from governance.review import users
    from governance.review.errors import ReviewError

    console = Console()
    with _session(database_url, data_dir) as session:
        try:
            token = users.token_by_id(session, token_id)
            already = token.revoked_at is not None
            users.revoke_token(session, token, actor=None)
            owner = token.user.username
        except ReviewError as err:
            raise _fail(err) from err
    note = "was already revoked" if already else "revoked"
    console.print(f"token {token_id} ({token.name!r} of [bold]{owner}[/bold]) {note}")


@queue_app.command("load")
def queue_load(
    flags: Annotated[
        Path, typer.Option("--flags", help="flags.parquet written by `govrisk audit`.")
    ],
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Data directory whose tables/channel_exposure.parquet gives exposure."
        ),
    ] = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Queue the audit's flags (ranked lists and random slice), de-duplicated."""
    import pandas as pd

    from governance.review import queue
    from governance.review.errors import ReviewError

    console = Console()
    df = pd.read_parquet(flags)
    exposure = None
    if data is not None:
        from features.loader import read_table

        with console.status("summarising exposure"):
            exposure_df = read_table(data, "channel_exposure")
            wanted = set(df["item_id"].astype(str))
            exposure = queue.summarize_exposure(
                exposure_df[exposure_df["item_id"].astype(str).isin(wanted)]
            )
    with _session(database_url, data_dir) as session:
        try:
            report = queue.ingest_flags(session, df, source=str(flags.name), exposure=exposure)
            stats = queue.queue_stats(session, None)
        except ReviewError as err:
            raise _fail(err) from err
    table = Table(title=f"Queued {flags}")
    table.add_column("")
    table.add_column("rows", justify="right")
    for key, value in report.__dict__.items():
        table.add_row(key.replace("_", " "), f"{value:,}")
    table.add_row("open in queue", f"{stats['open']:,}")
    console.print(table)


@suggestions_app.command("load")
def suggestions_load(
    path: Annotated[
        Path, typer.Option("--path", help="suggestions.parquet written by `govrisk audit`.")
    ],
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Put the audit's suggested strategy changes up for PM review."""
    import pandas as pd

    from governance.review import approvals
    from governance.review.errors import ReviewError

    console = Console()
    with _session(database_url, data_dir) as session:
        try:
            report = approvals.ingest_suggestions(
                session, pd.read_parquet(path), source=str(path.name)
            )
        except ReviewError as err:
            raise _fail(err) from err
    table = Table(title=f"Suggestions from {path}")
    table.add_column("")
    table.add_column("rows", justify="right")
    for key, value in report.__dict__.items():
        table.add_row(key.replace("_", " "), f"{value:,}")
    console.print(table)


@labels_app.command("export")
def labels_export(
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write (audit_labels table).")],
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Write every verdict as an audit_labels row, validated against the data contract."""
    from governance.review.labels import export_labels

    with _session(database_url, data_dir) as session:
        path, n_rows = export_labels(session, out)
    Console().print(f"wrote {n_rows:,} audit labels to {path}")


@labels_app.command("draw")
def labels_draw(
    dataset: Annotated[
        Path, typer.Option("--dataset", help="Output folder of `govrisk features byo`.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write.")],
    size: Annotated[
        int | None,
        typer.Option("--size", min=1, help="Draw about this many rows uniformly (random)."),
    ] = None,
    flags: Annotated[
        Path | None,
        typer.Option(
            "--flags",
            help="Take the audit slice (random_audit rows) of this flags.parquet instead of a "
            "uniform draw (sampling model_ranked, the slice's inclusion probabilities).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the uniform draw.")] = 0,
    reveal: Annotated[
        bool,
        typer.Option(
            "--reveal",
            help="Read the verdicts from the dataset's label column (standing in for "
            "reviewers) and write audit_labels rows; without it, write the sample to review.",
        ),
    ] = False,
    append: Annotated[
        bool, typer.Option("--append", help="Add the revealed labels to those already in --out.")
    ] = False,
) -> None:
    """Draw a review sample of a bring-your-own dataset, with known inclusion probabilities."""
    import pandas as pd

    from features.byo import SpecError
    from features.byo_labels import draw_random, labels_file, sample_from_draws
    from features.contract import ContractError
    from features.store import read_dataset
    from governance.audit.byo import audit_slice_draws

    if (size is None) == (flags is None):
        raise typer.BadParameter("give --size (a uniform draw) or --flags (the audit slice)")
    if append and not reveal:
        raise typer.BadParameter("--append adds revealed labels: add --reveal")
    console = Console()
    try:
        ds = read_dataset(dataset)
        if flags is not None:
            sample = sample_from_draws(ds, audit_slice_draws(pd.read_parquet(flags)))
        else:
            sample = draw_random(ds, size=size or 0, seed=seed)
        existing = pd.read_parquet(out) if append and out.exists() else None
        written = labels_file(ds, sample, with_verdicts=reveal, existing=existing)
    except (SpecError, ContractError, ValueError, FileNotFoundError) as err:
        raise _fail(err) from err
    out.parent.mkdir(parents=True, exist_ok=True)
    written.to_parquet(out, index=False)
    what = "audit labels" if reveal else "rows to review"
    console.print(f"drew {len(sample):,} rows; wrote {len(written):,} {what} to {out}")


def register(app: typer.Typer) -> None:
    """Add this module's subcommands to the root app."""
    app.add_typer(db_app, name="db")
    app.add_typer(users_app, name="users")
    app.add_typer(queue_app, name="queue")
    app.add_typer(suggestions_app, name="suggestions")
    app.add_typer(labels_app, name="labels")
