"""Staff device fixtures: the real SMTP server of the notifications tests."""

from __future__ import annotations

from tests.server.notifications.conftest import *  # noqa: F403
