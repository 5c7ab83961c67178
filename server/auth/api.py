"""JSON API for the signed-in person, users and personal tokens."""

from __future__ import annotations

from server.auth import services
from server.auth.models import ApiToken, User
from server.auth.permissions import ROLE_PERMISSIONS, Permission
from server.auth.schemas import (
    MeOut,
    TokenCreated,
    TokenIn,
    TokenList,
    TokenOut,
    UserCreateIn,
    UserList,
    UserOut,
)
from server.extensions import db_session
from server.openapi import current_api_user, endpoint


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


def _token_out(token: ApiToken) -> TokenOut:
    return TokenOut(
        id=token.id,
        name=token.name,
        prefix=token.prefix,
        created_at=token.created_at,
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
    summary="Make an API token",
    tag="account",
    body=TokenIn,
    response=TokenCreated,
    status=201,
)
def create_token(body: TokenIn) -> TokenCreated:
    session = db_session()
    token, plain = services.issue_token(session, current_api_user(), body.name)
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
