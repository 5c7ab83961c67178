"""Setting up a second factor at log-in is trusted only just after an administrator set the
password, not whenever someone learns it (P-SEC-1)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.auth.services import reset_password
from server.db import utcnow
from tests.server.conftest import post_login


def test_a_missing_second_factor_is_set_up_only_after_an_administrator_set_the_password(
    client: FlaskClient, session: Session, make_user: Callable[..., User]
) -> None:
    """P-SEC-1: a technician account made weeks ago never set up its second factor; whoever
    learns its password now cannot enrol their own phone (before, the log-in offered it). An
    administrator's reset opens the window again, for the person the reset was for."""
    technician = make_user(Role.TECHNICIAN)
    technician.second_factor_setup_until = utcnow() - timedelta(days=1)
    session.commit()
    refused = post_login(client, technician.email)
    assert refused.status_code == 403
    assert "Ask your administrator to reset your password" in refused.get_data(as_text=True)
    with client.session_transaction() as browser:
        assert "pending_login" not in browser

    reset_password(session, actor=None, email=technician.email, password="a-brand-new-password")
    session.commit()
    offered = post_login(client, technician.email, "a-brand-new-password")
    assert offered.status_code == 302 and offered.headers["Location"].endswith("/login/code/setup")
