"""JSON API for the signed-in person, users and personal tokens."""

from __future__ import annotations

from server.auth import services
from server.auth.models import ApiToken, User
from server.auth.permissions import ROLE_PERMISSIONS, Permission
from server.auth.schemas import (
    MeOut,
    ReasonIn,
    TokenCreated,
    TokenIn,
    TokenList,
    TokenOut,
    UserCreateIn,
    UserList,
    UserOut,
)
from server.extensions import db_session
from server.openapi import current_api_login, current_api_user, endpoint


def _user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        active=user.active,
        totp_enabled=user.totp_enabled,
    )


@endpoint(
    "/me",
    "GET",
    permission=Permission.ACCOUNT_USE,
    summary="Who am I",
    tag="account",
    response=MeOut,
)
def me() -> MeOut:
    user = current_api_user()
    return MeOut(
        **_user_out(user).model_dump(),
        school=user.school.slug,
        school_name=user.school.name,
        permissions=sorted(p.value for p in ROLE_PERMISSIONS[user.role]),
    )


@endpoint(
    "/users",
    "GET",
    permission=Permission.USERS_READ,
    summary="People in my school",
    tag="users",
    response=UserList,
)
def list_users() -> UserList:
    user = current_api_user()
    return UserList(
        items=[_user_out(u) for u in services.school_users(db_session(), user.school_id)]
    )


@endpoint(
    "/users",
    "POST",
    permission=Permission.USERS_MANAGE,
    summary="Add a person",
    tag="users",
    body=UserCreateIn,
    response=UserOut,
    status=201,
)
def create_user(body: UserCreateIn) -> UserOut:
    actor = current_api_user()
    session = db_session()
    user = services.create_user(
        session,
        actor=actor,
        school=actor.school,
        email=body.email,
        name=body.name,
        role=body.role,
        password=body.password,
    )
    session.commit()
    return _user_out(user)


@endpoint(
    "/users/<int:user_id>/deactivate",
    "POST",
    permission=Permission.USERS_MANAGE,
    summary="Turn a person's account off (sessions and tokens end)",
    tag="users",
    body=ReasonIn,
    response=UserOut,
)
def deactivate_user(user_id: int, body: ReasonIn) -> UserOut:
    actor = current_api_user()
    session = db_session()
    user = services.get_person(session, actor.school_id, user_id)
    return _user_out(services.deactivate(session, actor, user, body.reason))


@endpoint(
    "/users/<int:user_id>/reactivate",
    "POST",
    permission=Permission.USERS_MANAGE,
    summary="Turn a person's account back on",
    tag="users",
    body=ReasonIn,
    response=UserOut,
)
def reactivate_user(user_id: int, body: ReasonIn) -> UserOut:
    actor = current_api_user()
    session = db_session()
    user = services.get_person(session, actor.school_id, user_id)
    return _user_out(services.reactivate(session, actor, user, body.reason))


def _token_out(token: ApiToken) -> TokenOut:
    return TokenOut(
        id=token.id,
        name=token.name,
        prefix=token.prefix,
        scope=token.scope,
        created_at=token.created_at,
        expires_at=token.expires_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
    )


@endpoint(
    "/tokens",
    "GET",
    permission=Permission.ACCOUNT_USE,
    summary="My API tokens",
    tag="account",
    response=TokenList,
)
def list_tokens() -> TokenList:
    return TokenList(
        items=[_token_out(t) for t in services.list_tokens(db_session(), current_api_user())]
    )


@endpoint(
    "/tokens",
    "POST",
    permission=Permission.ACCOUNT_USE,
    summary="Make an API token (from a browser session with two-step verification)",
    tag="account",
    body=TokenIn,
    response=TokenCreated,
    status=201,
)
def create_token(body: TokenIn) -> TokenCreated:
    session = db_session()
    token, plain = services.make_token(
        session, current_api_login(), body.name, scope=body.scope, days=body.days
    )
    session.commit()
    return TokenCreated(**_token_out(token).model_dump(), token=plain)


@endpoint(
    "/tokens/<int:token_id>",
    "DELETE",
    permission=Permission.ACCOUNT_USE,
    summary="Revoke one of my API tokens",
    tag="account",
    response=TokenOut,
)
def revoke_token(token_id: int) -> TokenOut:
    session = db_session()
    token = services.revoke_token(session, current_api_user(), token_id)
    session.commit()
    return _token_out(token)
