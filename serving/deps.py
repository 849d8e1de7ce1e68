"""FastAPI dependencies of the review service: database session, users, roles, CSRF.

The JSON API authenticates with `Authorization: Bearer <token>` only; the pages with a signed
session cookie only, and every page form carries a CSRF token. Keeping the two apart means a
browser never sends API credentials by itself, so the API needs no CSRF defence.
"""

from __future__ import annotations

import hmac
import math
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Form, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from governance.review.db import ReviewSession
from governance.review.orm import User
from governance.review.service import writes_in_units_only
from governance.review.settings import ReviewSettings
from governance.review.strategy_store import StrategyStore
from governance.review.throttle import SignInThrottle
from governance.review.users import session_stamp, user_for_token
from governance.review.vocabulary import Role

#: Every role; routes open to all signed-in users require this set.
ANY_ROLE = tuple(Role)


@dataclass
class ReviewState:
    """What the review routes share for the app's lifetime (kept on `app.state.review`)."""

    settings: ReviewSettings
    engine: Engine
    session_factory: sessionmaker[ReviewSession]
    store: StrategyStore
    #: Failed sign-ins of this process, shared by the login page and the token exchange.
    throttle: SignInThrottle = field(init=False)

    def __post_init__(self) -> None:
        self.throttle = SignInThrottle(
            max_failures=self.settings.login_max_failures,
            window_seconds=self.settings.login_window_seconds,
        )


class LoginRequiredError(Exception):
    """A page needs a signed-in user; answered with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def get_state(request: Request) -> ReviewState:
    """The review state of the running app."""
    state: ReviewState = request.app.state.review
    return state


StateDep = Annotated[ReviewState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[ReviewSession]:
    """One database session per request; it writes only in the service's units of work."""
    with state.session_factory() as session:
        writes_in_units_only(session)
        yield session


SessionDep = Annotated[ReviewSession, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="API token from `govrisk users token`.")


def get_api_user(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user behind the bearer token (401 when missing, unknown, revoked or expired)."""
    user = user_for_token(session, credentials.credentials) if credentials is not None else None
    if user is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="send a valid API token as `Authorization: Bearer <token>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


CurrentUser = Annotated[User, Depends(get_api_user)]


def _forbidden(user: User, roles: tuple[Role, ...]) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_403_FORBIDDEN,
        detail=f"role {user.role.value!r} cannot do this; needs one of {[r.value for r in roles]}",
    )


def require_role(*roles: Role) -> Callable[..., User]:
    """API dependency: the token's user, if their role is one of `roles` (else 403)."""

    def dependency(user: CurrentUser) -> User:
        if user.role not in roles:
            raise _forbidden(user, roles)
        return user

    dependency.__name__ = f"require_{'_or_'.join(r.value for r in roles)}"
    return dependency


def client_address(request: Request) -> str | None:
    """The caller's address as the server sees it (a proxy's unless it forwards the client's)."""
    return request.client.host if request.client is not None else None


def throttle_message(retry_after_seconds: float) -> str:
    """Why a sign-in was refused and when to try again."""
    wait = max(1, math.ceil(retry_after_seconds))
    when = f"{wait} seconds" if wait < 90 else f"{math.ceil(wait / 60)} minutes"
    return f"Too many failed sign-ins for this account or address; try again in {when}."


def retry_after_header(retry_after_seconds: float) -> dict[str, str]:
    """The `Retry-After` header of a refused sign-in, whole seconds."""
    return {"Retry-After": str(max(1, math.ceil(retry_after_seconds)))}


def start_page_session(request: Request, user: User) -> None:
    """Sign `user` in on this browser: a fresh session with their stamp and a new CSRF token."""
    request.session.clear()
    request.session["uid"] = user.id
    request.session["stamp"] = session_stamp(user)
    csrf_token(request)


def get_page_user(request: Request, session: SessionDep) -> User:
    """The signed-in user of a page request (redirect to login when there is none).

    The session must carry the user's current stamp: a password change since sign-in ends it.
    """
    user_id = request.session.get("uid")
    user = session.get(User, user_id) if isinstance(user_id, int) else None
    stamp = request.session.get("stamp")
    if (
        user is None
        or not user.is_active
        or not isinstance(stamp, str)
        or not hmac.compare_digest(stamp, session_stamp(user))
    ):
        request.session.clear()
        raise LoginRequiredError(request.url.path)
    return user


PageUser = Annotated[User, Depends(get_page_user)]


def require_page_role(*roles: Role) -> Callable[..., User]:
    """Page dependency: the signed-in user, if their role is one of `roles` (else 403)."""

    def dependency(user: PageUser) -> User:
        if user.role not in roles:
            raise _forbidden(user, roles)
        return user

    dependency.__name__ = f"require_page_{'_or_'.join(r.value for r in roles)}"
    return dependency


def csrf_token(request: Request) -> str:
    """This browser session's CSRF token (created on first use)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def verify_csrf(request: Request, csrf: Annotated[str, Form(alias="csrf_token")] = "") -> None:
    """Refuse a form post whose CSRF token does not match the session's (403)."""
    expected = request.session.get("csrf")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, csrf):
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="the form's CSRF token is missing or stale; reload the page and try again",
        )


CsrfChecked = Annotated[None, Depends(verify_csrf)]

Moderator = Annotated[User, Depends(require_role(Role.MODERATOR, Role.ADMIN))]
Manager = Annotated[User, Depends(require_role(Role.PM, Role.ADMIN))]
Engineer = Annotated[User, Depends(require_role(Role.ML_ENGINEER, Role.ADMIN))]
Analyst = Annotated[User, Depends(require_role(Role.PM, Role.ML_ENGINEER, Role.ADMIN))]
Admin = Annotated[User, Depends(require_role(Role.ADMIN))]
AnyUser = Annotated[User, Depends(require_role(*ANY_ROLE))]

PageModerator = Annotated[User, Depends(require_page_role(Role.MODERATOR, Role.ADMIN))]
PageManager = Annotated[User, Depends(require_page_role(Role.PM, Role.ADMIN))]
PageAnalyst = Annotated[User, Depends(require_page_role(Role.PM, Role.ML_ENGINEER, Role.ADMIN))]
PageAdmin = Annotated[User, Depends(require_page_role(Role.ADMIN))]
PageAnyUser = Annotated[User, Depends(require_page_role(*ANY_ROLE))]
