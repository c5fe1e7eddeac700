"""Talking to the SMTP server: one connection per batch of mails.

A failure is either the server's (it cannot be reached, times out, refuses
the login, answers 4xx: try again later, for every mail waiting) or one
mail's (the server rejects it for good with a 5xx: retrying cannot help).
"""

import contextlib
import dataclasses
import email.message
import email.utils
import logging
import smtplib
import ssl
import time

from pinball_notifier_email.compose import Mail
from pinball_notifier_email.settings import EmailSettings

log = logging.getLogger(__name__)


class ServerUnavailable(Exception):
    """The server could not take mail now; every waiting mail should wait."""


class MailRejected(Exception):
    """The server refused this one mail for good."""


@dataclasses.dataclass
class Delivery:
    """What became of one mail sent: the addresses the server refused."""

    refused: dict[str, str]


class SmtpConnection:
    """An open, logged-in SMTP session; use as a context manager."""

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> "SmtpConnection":
        settings = self.settings
        where = f"{settings.smtp_host}:{settings.smtp_port}"
        try:
            context = ssl.create_default_context(cafile=settings.ca_file)
            smtp: smtplib.SMTP
            if settings.smtp_ssl:
                smtp = smtplib.SMTP_SSL(
                    settings.smtp_host,
                    settings.smtp_port,
                    timeout=settings.timeout_sec,
                    context=context,
                )
            else:
                smtp = smtplib.SMTP(
                    settings.smtp_host, settings.smtp_port, timeout=settings.timeout_sec
                )
            self._smtp = smtp
            if settings.starttls:
                smtp.starttls(context=context)
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_pass)
        except smtplib.SMTPAuthenticationError as exc:
            self._abandon()
            raise ServerUnavailable(
                f"{where} refused the login of {settings.smtp_user!r} "
                f"({_reply(exc)}); check smtp_user and smtp_pass"
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            self._abandon()
            raise ServerUnavailable(
                f"{where} does not offer {exc}; check plugins.email.starttls, "
                "smtp_ssl and smtp_user"
            ) from exc
        except ssl.SSLError as exc:
            self._abandon()
            raise ServerUnavailable(
                f"TLS with {where} failed ({exc}); plugins.email.ca_file names "
                "the authority to trust for a private certificate"
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            self._abandon()
            raise ServerUnavailable(f"{where}: {_describe(exc)}") from exc
        return self

    def send(self, mail: Mail, sender: str) -> Delivery:
        """Send one mail.

        :raises ServerUnavailable: the session broke or the server said 4xx.
        :raises MailRejected: the server refused this mail for good.
        """
        assert self._smtp is not None, "send() outside the with block"
        message = build_message(mail, sender)
        try:
            refused = self._smtp.send_message(
                message, from_addr=sender, to_addrs=list(mail.recipients)
            )
        except smtplib.SMTPRecipientsRefused as exc:
            reasons = {
                r: _reply_of(code, text) for r, (code, text) in exc.recipients.items()
            }
            if all(code >= 500 for code, _ in exc.recipients.values()):
                raise MailRejected(f"every recipient refused: {reasons}") from exc
            raise ServerUnavailable(f"recipients refused for now: {reasons}") from exc
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500:
                raise MailRejected(_reply(exc)) from exc
            raise ServerUnavailable(_reply(exc)) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise ServerUnavailable(_describe(exc)) from exc
        return Delivery(
            refused={r: _reply_of(code, text) for r, (code, text) in refused.items()}
        )

    def __exit__(self, *exc_info: object) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (smtplib.SMTPException, OSError):
            self._abandon()
        self._smtp = None

    def _abandon(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(OSError):
                self._smtp.close()
            self._smtp = None


def build_message(mail: Mail, sender: str) -> email.message.EmailMessage:
    """The MIME message of ``mail``: text, or text and HTML as alternatives."""
    message = email.message.EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(mail.recipients)
    message["Subject"] = mail.subject
    message["Date"] = email.utils.formatdate(time.time(), usegmt=True)
    # A domain of our own: without one, make_msgid asks DNS for this host's.
    domain = sender.rpartition("@")[2] or "pinball.invalid"
    message["Message-ID"] = email.utils.make_msgid("pinball", domain=domain)
    # RFC 3834: out-of-office replies and the like must not answer this.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Pinball-Event"] = mail.kind
    message.set_content(mail.text)
    if mail.html is not None:
        message.add_alternative(mail.html, subtype="html")
    return message


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return _reply_of(exc.smtp_code, exc.smtp_error)


def _reply_of(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return f"{code} {' '.join(text.split())}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())
