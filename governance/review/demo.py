"""Demo accounts for a local review service: one team per policy family, a user per role."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from governance.review import users
from governance.review.errors import NotFoundError
from governance.review.orm import User
from governance.review.vocabulary import Role

#: Teams and the policies routed to them.
DEMO_TEAMS: dict[str, tuple[str, ...]] = {
    "brand-protection": ("counterfeit", "fake_discount"),
    "safety": ("prohibited_item", "misleading_claim"),
    "quality": ("low_quality", "engagement_fraud"),
}
#: (username, role, team or None).
DEMO_USERS: tuple[tuple[str, Role, str | None], ...] = (
    ("admin", Role.ADMIN, None),
    ("mod-brand", Role.MODERATOR, "brand-protection"),
    ("mod-safety", Role.MODERATOR, "safety"),
    ("pm", Role.PM, None),
    ("ml", Role.ML_ENGINEER, None),
)


@dataclass(frozen=True)
class DemoAccount:
    """A demo login; `password` is empty for an account that already existed."""

    username: str
    role: Role
    team: str | None
    password: str


def seed_demo_accounts(session: Session, *, reset_passwords: bool = False) -> list[DemoAccount]:
    """Create the demo teams and users (idempotent); new or reset accounts get a fresh password.

    PMs and ML engineers are granted every team so they can read the whole queue.
    """
    teams = {}
    for name, policies in DEMO_TEAMS.items():
        try:
            teams[name] = users.team_by_name(session, name)
        except NotFoundError:
            teams[name] = users.create_team(session, name=name, policies=policies)
    accounts = []
    for username, role, team in DEMO_USERS:
        existing = session.scalar(sa.select(User).where(User.username == username))
        password = secrets.token_urlsafe(9)
        if existing is None:
            user = users.create_user(
                session,
                username=username,
                role=role,
                password=password,
                team=teams[team] if team else None,
            )
        else:
            user = existing
            if reset_passwords:
                users.set_password(session, user, password, actor=None)
            else:
                password = ""
        if role in (Role.PM, Role.ML_ENGINEER):
            for granted in teams.values():
                if granted not in user.granted_teams:
                    users.grant_team(session, user, granted, actor=None)
        accounts.append(DemoAccount(username, role, team, password))
    session.flush()
    return accounts
