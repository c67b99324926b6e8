"""The email channel: SMTP with STARTTLS, SSL or neither, a login when a username is
set (its password from env:NAME), plain-text and HTML parts."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from bridge.alerts.message import Notification
from bridge.alerts.rules import Channel
from bridge.errors import DeliveryError


def build(channel: Channel, n: Notification) -> EmailMessage:
    s = channel.settings
    msg = EmailMessage()
    msg["Subject"] = n.title
    msg["From"] = s["from"]
    msg["To"] = ", ".join(s["to"])
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=s["from"].rpartition("@")[2])
    msg.set_content(n.text())
    msg.add_alternative(n.html(), subtype="html")
    return msg


def send(channel: Channel, n: Notification, timeout: float) -> None:
    s = channel.settings
    context = ssl.create_default_context()
    try:
        if s["security"] == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                s["host"], s["port"], timeout=timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(s["host"], s["port"], timeout=timeout)
        with smtp:
            if s["security"] == "starttls":
                smtp.starttls(context=context)
            if s.get("username"):
                smtp.login(s["username"], s.get("password", ""))
            smtp.send_message(build(channel, n))
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP {s['host']}:{s['port']}: {exc}") from None
