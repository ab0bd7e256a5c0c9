"""Email over SMTP with STARTTLS against a real aiosmtpd server that requires it: sent when
its certificate is trusted, refused (and nothing sent) when it is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.core.alert_send import send_email
from dockyard.models.alert_schemas import Notice
from dockyard.models.base import utcnow
from tests.alerts.receivers import self_signed, smtp_server
from tests.conftest import make_settings

NOTICE = Notice(event="fired", alert_id=None, key="service-down:x", kind="service-down",
                severity="critical", subject="shop/web is down", detail="", state="firing",
                at=utcnow())


def test_starttls_to_a_trusted_server_delivers(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    tls = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls[0]))  # the machine trusts this server
    with smtp_server(tls) as (port, mailbox):
        settings = make_settings(tmp_path, None, smtp_host="127.0.0.1", smtp_port=port,
                                 smtp_from="alerts@example.com")
        sent = send_email(settings, "ops@example.com", NOTICE)
    assert (sent.ok, sent.code) == (True, 250)
    assert [(m["From"], m["To"], m["Subject"]) for m in mailbox.messages] == [
        ("alerts@example.com", "ops@example.com", "[FIRING] [critical] shop/web is down")]


def test_starttls_to_an_untrusted_server_is_refused(tmp_path: Path) -> None:
    with smtp_server(self_signed(tmp_path)) as (port, mailbox):
        settings = make_settings(tmp_path, None, smtp_host="127.0.0.1", smtp_port=port)
        sent = send_email(settings, "ops@example.com", NOTICE)
    assert not sent.ok
    assert "CERTIFICATE_VERIFY_FAILED" in sent.error
    assert mailbox.messages == []


def test_without_starttls_a_server_that_requires_it_refuses(tmp_path: Path) -> None:
    with smtp_server(self_signed(tmp_path)) as (port, mailbox):
        settings = make_settings(tmp_path, None, smtp_host="127.0.0.1", smtp_port=port,
                                 smtp_starttls=False)
        sent = send_email(settings, "ops@example.com", NOTICE)
    assert (sent.ok, sent.code) == (False, 530)
    assert mailbox.messages == []
