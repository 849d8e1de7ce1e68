"""Users, teams and API tokens: argon2 password hashes (pwdlib), SHA-256 digests of tokens."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import sqlalchemy as sa
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy.orm import Session

from features.vocabulary import Policy
from governance.review import audit_log
from governance.review.errors import ConflictError, InvalidInputError, NotFoundError
from governance.review.orm import ApiToken, Team, User
from governance.review.vocabulary import Role, TokenState, utcnow

MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "grk_"
_USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


@lru_cache(maxsize=1)
def password_hasher() -> PasswordHash:
    """The argon2id hasher (pwdlib's recommended parameters)."""
    return PasswordHash((Argon2Hasher(),))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Verified against when the username is unknown, so both paths cost one argon2 check.
    return password_hasher().hash(secrets.token_urlsafe(16))


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(
            f"password: use at least {MIN_PASSWORD_LENGTH} characters (got {len(password)})"
        )


def create_team(
    session: Session,
    *,
    name: str,
    policies: Iterable[str] = (),
    actor: User | None = None,
) -> Team:
    """A new team that receives queue items of `policies`."""
    policy_values = [str(p) for p in policies]
    unknown = sorted(set(policy_values) - {p.value for p in Policy})
    if unknown:
        raise InvalidInputError(
            f"team policies: unknown {unknown}; use values of Policy: {[p.value for p in Policy]}"
        )
    if session.scalar(sa.select(Team).where(Team.name == name)) is not None:
        raise ConflictError(f"team {name!r} already exists")
    team = Team(name=name, policies=policy_values)
    session.add(team)
    session.flush()
    audit_log.record(
        session,
        actor=actor,
        action="team.create",
        target_type="team",
        target_id=team.id,
        after={"name": name, "policies": policy_values},
    )
    return team


def team_by_name(session: Session, name: str) -> Team:
    """The team called `name`."""
    team = session.scalar(sa.select(Team).where(Team.name == name))
    if team is None:
        raise NotFoundError(f"team {name!r} does not exist; create it first")
    return team


def create_user(
    session: Session,
    *,
    username: str,
    role: Role | str,
    password: str,
    display_name: str = "",
    team: Team | None = None,
    actor: User | None = None,
) -> User:
    """A new active user with an argon2 password hash."""
    if not _USERNAME_RE.match(username):
        raise InvalidInputError(
            f"username {username!r}: use 2-64 lowercase letters, digits, '.', '_' or '-'"
        )
    try:
        role = Role(role)
    except ValueError as err:
        raise InvalidInputError(
            f"role {role!r} is unknown; use one of {[r.value for r in Role]}"
        ) from err
    _check_password(password)
    if session.scalar(sa.select(User.id).where(User.username == username)) is not None:
        raise ConflictError(f"user {username!r} already exists")
    user = User(
        username=username,
        display_name=display_name or username,
        role=role,
        team=team,
        password_hash=password_hasher().hash(password),
    )
    session.add(user)
    session.flush()
    audit_log.record(
        session,
        actor=actor,
        action="user.create",
        target_type="user",
        target_id=user.id,
        after={"username": username, "role": role, "team": team.name if team else None},
    )
    return user


def user_by_username(session: Session, username: str) -> User:
    """The user called `username`."""
    user = session.scalar(sa.select(User).where(User.username == username))
    if user is None:
        raise NotFoundError(f"user {username!r} does not exist")
    return user


def list_users(session: Session, *, active_only: bool = False) -> list[User]:
    """Every user (only the active ones with `active_only`), by username."""
    query = sa.select(User).order_by(User.username)
    if active_only:
        query = query.where(User.is_active)
    return list(session.scalars(query))


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user if the password matches, else None (same cost either way)."""
    user = session.scalar(sa.select(User).where(User.username == username))
    hasher = password_hasher()
    if user is None or not user.is_active:
        hasher.verify(password, _dummy_hash())
        return None
    valid, new_hash = hasher.verify_and_update(password, user.password_hash)
    if not valid:
        return None
    if new_hash is not None:  # parameters changed since the hash was made
        user.password_hash = new_hash
    return user


def session_stamp(user: User) -> str:
    """A fingerprint of the user's password hash and session epoch, 16 hex characters; kept in
    page sessions.

    It changes whenever the hash or the epoch does, so a page session signed in before a
    password change, a disable or a sign-out-everywhere no longer matches. The cookie holding
    it is signed but readable by its holder; a truncated SHA-256 of a salted argon2 hash tells
    them nothing about the password.
    """
    material = f"{user.password_hash}|{user.session_epoch or 0}"
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:16]


def end_sessions(session: Session, user: User, *, actor: User | None) -> None:
    """Sign the user out of every browser (API tokens stay valid; revoke them separately)."""
    _bump_session_epoch(user)
    audit_log.record(
        session, actor=actor, action="user.end_sessions", target_type="user", target_id=user.id
    )


def _bump_session_epoch(user: User) -> None:
    user.session_epoch = (user.session_epoch or 0) + 1


def set_password(session: Session, user: User, password: str, *, actor: User | None) -> None:
    """Replace a user's password (ending their page sessions; API tokens stay valid)."""
    _check_password(password)
    user.password_hash = password_hasher().hash(password)
    audit_log.record(
        session, actor=actor, action="user.set_password", target_type="user", target_id=user.id
    )


def set_active(session: Session, user: User, active: bool, *, actor: User | None) -> None:
    """Enable or disable a user (a disabled user cannot sign in, use pages or use tokens).

    Disabling also ends the user's page sessions, so enabling them again later does not bring
    back a browser that was signed in before.
    """
    before = user.is_active
    user.is_active = active
    if before and not active:
        _bump_session_epoch(user)
    audit_log.record(
        session,
        actor=actor,
        action="user.set_active",
        target_type="user",
        target_id=user.id,
        before={"is_active": before},
        after={"is_active": active},
    )


def grant_team(session: Session, user: User, team: Team, *, actor: User | None) -> None:
    """Let `user` read and work `team`'s queue besides their own."""
    if team not in user.granted_teams:
        user.granted_teams.append(team)
    audit_log.record(
        session,
        actor=actor,
        action="user.grant_team",
        target_type="user",
        target_id=user.id,
        after={"team": team.name},
    )


def visible_team_ids(user: User) -> set[int] | None:
    """Teams whose queue `user` may read: None means every team (admins)."""
    if user.role == Role.ADMIN:
        return None
    ids = {t.id for t in user.granted_teams}
    if user.team_id is not None:
        ids.add(user.team_id)
    return ids


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenLifetime:
    """How long new API tokens live, days: the default and the longest a role may choose.

    No token lives forever: asking for no particular lifetime gives the default.
    """

    default_days: float = 30.0
    max_days: float = 90.0
    admin_max_days: float = 365.0

    def days_for(self, requested: float | None, role: Role) -> float:
        """The lifetime of a token requested by a user of `role` (None: the default)."""
        cap = self.admin_max_days if role == Role.ADMIN else self.max_days
        if requested is None:
            return min(self.default_days, cap)
        if not (math.isfinite(requested) and 0 < requested <= cap):
            raise InvalidInputError(
                f"ttl_days: choose a lifetime above 0 and at most {cap:g} days for a "
                f"{role.value} (got {requested:g}); leave it out for {self.default_days:g} days"
            )
        return requested


def issue_token(
    session: Session,
    user: User,
    *,
    name: str,
    ttl_days: float = TokenLifetime.default_days,
    actor: User | None = None,
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new API token for `user` that expires after `ttl_days`: the stored record and the
    secret (shown only now)."""
    if not (math.isfinite(ttl_days) and ttl_days > 0):
        raise InvalidInputError(
            f"ttl_days: a token lives a positive number of days, not {ttl_days}"
        )
    now = now or utcnow()
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=_digest(secret),
        token_prefix=secret[: len(TOKEN_PREFIX) + 6],
        created_at=now,
        expires_at=now + timedelta(days=ttl_days),
    )
    session.add(token)
    session.flush()
    audit_log.record(
        session,
        actor=actor or user,
        action="token.issue",
        target_type="api_token",
        target_id=token.id,
        after={"user": user.username, "name": name, "expires_at": token.expires_at},
    )
    return token, secret


def user_for_token(session: Session, secret: str, *, now: datetime | None = None) -> User | None:
    """The active user owning a valid (unrevoked, unexpired) token, else None."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    token = session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == _digest(secret)))
    if token is None or token.revoked_at is not None:
        return None
    if token.expires_at is not None and token.expires_at <= (now or utcnow()):
        return None
    return token.user if token.user.is_active else None


def token_state(token: ApiToken, *, now: datetime | None = None) -> TokenState:
    """Whether a token works now, or why not (revocation wins over expiry)."""
    if token.revoked_at is not None:
        return TokenState.REVOKED
    if token.expires_at is not None and token.expires_at <= (now or utcnow()):
        return TokenState.EXPIRED
    return TokenState.ACTIVE


def tokens_of(session: Session, user: User) -> list[ApiToken]:
    """Every API token of a user, newest first (revoked and expired ones included)."""
    return list(
        session.scalars(
            sa.select(ApiToken)
            .where(ApiToken.user_id == user.id)
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
    )


def token_by_id(session: Session, token_id: int) -> ApiToken:
    """One API token by id."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFoundError(f"no API token with id {token_id}; `govrisk users tokens` lists them")
    return token


def revoke_token(session: Session, token: ApiToken, *, actor: User | None) -> None:
    """Make a token unusable from now on (a token already revoked keeps its revocation time)."""
    if token.revoked_at is not None:
        return
    token.revoked_at = utcnow()
    audit_log.record(
        session,
        actor=actor,
        action="token.revoke",
        target_type="api_token",
        target_id=token.id,
        after={"revoked_at": token.revoked_at},
    )
