"""Sending one notice to one channel: the signed generic webhook, Slack- and Discord-compatible
webhooks, and email over SMTP. Webhook signature: `X-Dockyard-Signature: sha256=<hex>` where
hex = HMAC-SHA256(secret, f"{timestamp}.{body}") and timestamp is `X-Dockyard-Timestamp`
(epoch seconds), so a receiver can refuse a replayed or altered body."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage

import httpx

from dockyard.kernel.settings import Settings
from dockyard.models.alert_schemas import Notice

SIGNATURE_HEADER = "X-Dockyard-Signature"
TIMESTAMP_HEADER = "X-Dockyard-Timestamp"
TIMEOUT = 10.0


@dataclass(frozen=True)
class Target:
    kind: str
    target: str
    secret: str  # webhook only


@dataclass(frozen=True)
class Sent:
    ok: bool
    code: int | None = None
    error: str = ""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def body_of(kind: str, notice: Notice) -> bytes:
    if kind == "slack":
        document: object = {"text": notice.text}
    elif kind == "discord":
        document = {"content": notice.text[:2000]}
    else:
        document = notice.model_dump(mode="json")
    return json.dumps(document, separators=(",", ":")).encode()


def headers_of(target: Target, body: bytes, now: float) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": "Dockyard-Alerts"}
    if target.kind == "webhook":
        timestamp = str(int(now))
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = signature(target.secret, timestamp, body)
    return headers


async def send(settings: Settings, target: Target, notice: Notice) -> Sent:
    if target.kind == "email":
        return await asyncio.to_thread(send_email, settings, target.target, notice)
    return await post(target, notice)


async def post(target: Target, notice: Notice) -> Sent:
    body = body_of(target.kind, notice)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as client:
            answer = await client.post(target.target, content=body,
                                       headers=headers_of(target, body, time.time()))
    except httpx.HTTPError as exc:
        return Sent(False, None, f"{type(exc).__name__}: {exc}"[:500])
    if answer.is_success:
        return Sent(True, answer.status_code)
    # Not the body: a channel's URL is the admin's to choose, and what it answers is not
    # theirs to read through Dockyard (a cloud's metadata service, say).
    return Sent(False, answer.status_code,
                f"answered {answer.status_code} {answer.reason_phrase}".strip())


def email_of(settings: Settings, address: str, notice: Notice) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from or f"dockyard@{settings.smtp_host}"
    message["To"] = address
    message["Subject"] = notice.text.splitlines()[0][:200]
    message.set_content(f"{notice.text}\n\nalert: {notice.key}\nat: {notice.at.isoformat()}\n")
    return message


def send_email(settings: Settings, address: str, notice: Notice) -> Sent:
    if not settings.smtp_host:
        return Sent(False, None, "no SMTP server configured (set DOCKYARD_SMTP_HOST)")
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())  # verifies the server
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            smtp.send_message(email_of(settings, address, notice))
    except (OSError, smtplib.SMTPException) as exc:
        return Sent(False, getattr(exc, "smtp_code", None), f"{type(exc).__name__}: {exc}"[:500])
    return Sent(True, 250)
