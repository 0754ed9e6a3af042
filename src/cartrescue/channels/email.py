"""Email over SMTP with the standard library (``smtplib``, ``email.message.EmailMessage``).

Each message is multipart/alternative (text and HTML) when HTML was rendered, carries a
``Message-ID`` derived from the message key (a resend after a crash has the same id, so
receivers can recognise it), and — when the engine gave an unsubscribe URL — the RFC 8058
one-click headers ``List-Unsubscribe: <https://...>`` and ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click`` that Gmail and Yahoo require of bulk senders. One connection is
opened on the first message of a pass and reused until :meth:`SMTPEmail.close`.

Outcomes follow RFC 5321: a 5xx reply to RCPT or DATA is permanent, a 4xx transient; a
connection that drops before the server confirmed the DATA is transient (the server has not
taken responsibility for the message); a timeout waiting for that confirmation is unknown.
A message that cannot be composed or encoded (text no encoder accepts) fails before the DATA
command, as permanent: nothing was sent, and the same content would fail again.
"""

from __future__ import annotations

import contextlib
import email.policy
import hashlib
import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import ClassVar, Literal

from ..doctor import Problem
from ..errors import (
    ConfigError,
    PermanentSendError,
    SendError,
    SendOutcomeUnknown,
    TransientSendError,
)
from ..http import redact
from ..logmask import mask_contact, mask_text
from ..models import ChannelKind, Message, Receipt
from ..render import SUBJECT_LIMIT
from ..settings.base import PluginSettings
from ..settings.providers import SMTPSettings
from .base import require

__all__ = ["SMTPEmail"]

log = logging.getLogger("cartrescue.channels")

Security = Literal["starttls", "ssl", "none"]
_PORTS: dict[str, int] = {"starttls": 587, "ssl": 465, "none": 25}
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
# Long unsubscribe URLs must stay one token: fold at the RFC 5322 limit, not at 78.
_POLICY = email.policy.SMTP.clone(max_line_length=998)


def _subject(text: str) -> str:
    """One line (CR, LF and other breaks fold to spaces) of at most
    :data:`~cartrescue.render.SUBJECT_LIMIT` characters, whoever rendered it."""
    line = " ".join(text.split())
    if len(line) <= SUBJECT_LIMIT:
        return line
    return line[: SUBJECT_LIMIT - 1].rstrip() + "…"


class SMTPEmail:
    """Sends email through an SMTP server.

    Config (``[channels.email] type = "smtp"``): ``host``, ``sender`` (``"My Shop
    <reminders@myshop.example>"``), optional ``port`` (587 / 465 / 25 by ``security``),
    ``security`` (``"starttls"``, the default, ``"ssl"`` for implicit TLS, or ``"none"``,
    allowed with a login only on loopback), ``username``, ``password_env``, ``reply_to``,
    ``timeout`` (seconds) and ``local_hostname``. ``ssl_context`` is for Python callers
    (a private CA, say).
    """

    settings_model: ClassVar[type[PluginSettings]] = SMTPSettings

    provider: ClassVar[str] = "smtp"

    def __init__(
        self,
        kind: ChannelKind = "email",
        *,
        host: str,
        sender: str,
        port: int | None = None,
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        reply_to: str | None = None,
        timeout: float = 30.0,
        local_hostname: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if kind != "email":
            raise ConfigError("smtp sends email; configure it under [channels.email]", key="kind")
        self.kind: ChannelKind = "email"
        self.host = require(host, "host")
        if security not in _PORTS:
            raise ConfigError("expected 'starttls', 'ssl' or 'none'", key="security")
        self.security: Security = security
        if port is None:
            port = _PORTS[security]
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"expected a port number, got {port!r}", key="port")
        self.port = port
        self.sender = require(sender, "sender")
        self.envelope_from = parseaddr(self.sender)[1]
        if "@" not in self.envelope_from:
            raise ConfigError(
                "expected an address such as 'My Shop <reminders@myshop.example>'", key="sender"
            )
        self.domain = self.envelope_from.rpartition("@")[2].lower()
        if (username is None) != (password is None):
            raise ConfigError("give both username and password, or neither", key="username")
        if username and security == "none" and self.host not in _LOOPBACK:
            raise ConfigError(
                "refusing to send a password without TLS; use security = 'starttls' or 'ssl'",
                key="security",
            )
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(f"expected seconds, got {timeout!r}", key="timeout")
        self.username = username
        self._password = password
        self.reply_to = reply_to
        self.timeout = float(timeout)
        self.local_hostname = local_hostname
        self._context = ssl_context
        self._conn: smtplib.SMTP | None = None

    # -- composing ------------------------------------------------------------------------
    def message_id(self, key: str) -> str:
        digest = hashlib.sha256(f"{self.envelope_from}\0{key}".encode()).hexdigest()[:32]
        return f"<cartrescue.{digest}@{self.domain}>"

    def compose(self, message: Message) -> EmailMessage:
        """The email for ``message``, as it will be sent."""
        content = message.content
        if "@" not in message.to:
            raise self._error(PermanentSendError, "the recipient is not an email address")
        if not content.subject:
            raise self._error(PermanentSendError, "no subject was rendered for this email")
        mail = EmailMessage(policy=_POLICY)
        try:
            mail["From"] = self.sender
            mail["To"] = message.to
            mail["Subject"] = _subject(content.subject)
            mail["Date"] = formatdate(usegmt=True)
            mail["Message-ID"] = self.message_id(message.key)
            if self.reply_to:
                mail["Reply-To"] = self.reply_to
            url = message.unsubscribe_url
            if url:
                mail["List-Unsubscribe"] = f"<{url}>"
                if url.startswith("https://"):
                    mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
                else:
                    log.warning("unsubscribe URL is not https: one-click unsubscribe is off")
            mail.set_content(content.text)
            if content.html:
                mail.add_alternative(content.html, subtype="html")
        except (ValueError, TypeError) as err:
            raise self._error(PermanentSendError, f"cannot build the email: {err}") from err
        return mail

    def _not_encoded(self, err: Exception) -> SendError:
        return self._error(
            PermanentSendError,
            f"the email could not be encoded, nothing was sent ({type(err).__name__}: "
            f"{mask_text(str(err))[:200]})",
        )

    # -- the connection -------------------------------------------------------------------
    def _error(self, cls: type[SendError], what: str, code: int | None = None) -> SendError:
        secrets = (self._password,) if self._password else ()
        text = f"smtp {self.host}: {redact(what, 400, secrets)}"
        return cls(text, provider=self.provider, code=code)

    def _open(self) -> smtplib.SMTP:
        context = self._context or ssl.create_default_context()
        try:
            conn: smtplib.SMTP
            if self.security == "ssl":
                conn = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    local_hostname=self.local_hostname,
                    timeout=self.timeout,
                    context=context,
                )
            else:
                conn = smtplib.SMTP(
                    self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout
                )
            conn.ehlo()
            if self.security == "starttls":
                if not conn.has_extn("starttls"):
                    conn.close()
                    raise self._error(
                        TransientSendError, "the server does not offer STARTTLS; nothing was sent"
                    )
                conn.starttls(context=context)
                conn.ehlo()
            if self.username and self._password:
                conn.login(self.username, self._password)
        except smtplib.SMTPAuthenticationError as err:
            raise self._error(
                TransientSendError,
                f"the server refused the login for {self.username} ({err.smtp_code}); "
                "check username and password; nothing was sent",
                err.smtp_code,
            ) from err
        except (OSError, smtplib.SMTPException) as err:
            raise self._error(
                TransientSendError, f"could not connect: {type(err).__name__}: {err}"
            ) from err
        return conn

    def _connection(self) -> smtplib.SMTP:
        if self._conn is not None:
            try:
                if self._conn.noop()[0] == 250:
                    return self._conn
            except (OSError, smtplib.SMTPException):
                pass
            self._drop()
        self._conn = self._open()
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def _refused(self, stage: str, code: int, reply: bytes | str) -> SendError:
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
        cls: type[SendError] = PermanentSendError if 500 <= code < 600 else TransientSendError
        return self._error(cls, f"{stage} refused ({code} {text})", code)

    # -- sending --------------------------------------------------------------------------
    def send(self, message: Message) -> Receipt:
        if message.channel != "email":
            raise self._error(
                PermanentSendError, f"this channel sends email, not {message.channel}"
            )
        mail = self.compose(message)
        try:
            payload = mail.as_bytes(policy=_POLICY)
        except (ValueError, TypeError, LookupError) as err:  # UnicodeEncodeError among them
            raise self._not_encoded(err) from err
        options = ["SMTPUTF8"] if not (message.to + self.envelope_from).isascii() else []
        conn = self._connection()
        if options and not conn.has_extn("smtputf8"):
            raise self._error(
                PermanentSendError, "the server does not accept internationalised addresses"
            )
        try:
            code, reply = conn.mail(self.envelope_from, options)
            if code != 250:
                conn.rset()
                raise self._error(
                    TransientSendError,
                    f"the sender {self.envelope_from} was refused ({code} "
                    f"{reply.decode('utf-8', 'replace')}); check sender; nothing was sent",
                    code,
                )
            code, reply = conn.rcpt(message.to)
            if code not in (250, 251):
                conn.rset()
                raise self._refused("the recipient was", code, reply)
        except UnicodeError as err:  # smtplib encodes a command before writing it
            with contextlib.suppress(OSError, smtplib.SMTPException):
                conn.rset()
            raise self._not_encoded(err) from err
        except (OSError, smtplib.SMTPException) as err:
            self._drop()
            raise self._error(TransientSendError, f"connection lost: {err}") from err
        try:
            code, reply = conn.data(payload)
        except smtplib.SMTPDataError as err:
            raise self._refused("the message was", err.smtp_code, err.smtp_error) from err
        except (OSError, smtplib.SMTPException) as err:
            self._drop()
            if isinstance(err.__context__, TimeoutError) or isinstance(err, TimeoutError):
                raise self._error(
                    SendOutcomeUnknown,
                    "no answer after the message was sent; it may have been accepted, so it is "
                    "not sent again",
                ) from err
            raise self._error(
                TransientSendError, f"connection lost before the server took the message: {err}"
            ) from err
        if code != 250:
            raise self._refused("the message was", code, reply)
        message_id = mail["Message-ID"]
        log.debug("smtp accepted key=%s to=%s", message.key, mask_contact(message.to))
        return Receipt(provider=self.provider, provider_id=message_id)

    def check(self) -> list[Problem]:
        """``cartrescue doctor``'s check: connect, secure and log in, then quit. Sends no
        message."""
        try:
            conn = self._open()
        except SendError as err:
            return [Problem("channels.email", str(err), "check host, port, security and login")]
        with contextlib.suppress(OSError, smtplib.SMTPException):
            conn.quit()
        return []

    def close(self) -> None:
        """End the SMTP session politely; the next send opens a new one."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (OSError, smtplib.SMTPException):
            conn.close()

    def __repr__(self) -> str:
        return f"SMTPEmail(host={self.host!r}, port={self.port}, security={self.security!r})"
