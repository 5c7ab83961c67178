"""A real SMTP server on 127.0.0.1 (aiosmtpd) and settings that point Trolley at it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage as MimeMessage
from email.parser import BytesParser
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask

from server.config import Settings, replace
from tests.helpers import free_port

BASE_URL = "https://trolley.oakfield.example"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: MimeMessage


class Mailbox:
    """An aiosmtpd handler that keeps every message it accepts; refuses listed addresses."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.refuse: set[str] = set()
        self._lock = threading.Lock()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        with self._lock:
            self.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), message)  # type: ignore[arg-type]
            )
        return "250 Message accepted for delivery"


class MailServer:
    """A running SMTP server on 127.0.0.1 at a chosen port."""

    def __init__(self, port: int, **smtp_options: Any) -> None:
        self.port = port
        self.mailbox = Mailbox()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=port, **smtp_options)

    @property
    def messages(self) -> list[Received]:
        return self.mailbox.messages

    def start(self) -> MailServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def start_mail_server(smtp_port: int) -> Iterator[Callable[..., MailServer]]:
    """Start the SMTP server on `smtp_port` when the test says so (after an outage, say)."""
    started: list[MailServer] = []

    def start(**smtp_options: Any) -> MailServer:
        server = MailServer(smtp_port, **smtp_options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def mail_server(start_mail_server: Callable[[], MailServer]) -> MailServer:
    return start_mail_server()


def settings_for(app_settings: Settings, port: int, **changes: Any) -> Settings:
    return replace(
        app_settings,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_from="Trolley <trolley@oakfield.example>",
        base_url=BASE_URL,
        **changes,
    )


@pytest.fixture
def mail_settings(app: Flask, smtp_port: int) -> Settings:
    """The app's settings, sending to the test SMTP port (running or not)."""
    return settings_for(app.extensions["trolley.settings"], smtp_port)
