"""``cartrescue test-send``: one real, rendered message to the owner's own number or address.

The message is a step's template rendered with a sample cart (the one ``preview`` uses),
marked as a test (``[TEST]`` before an SMS, a WhatsApp text or an email's subject), and sent
through the configured channel. It is recorded in the store's events (``test_send`` or
``test_send_failed``), never in the outbox: it is not counted as a message by ``stats`` and
can never block a real step.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from .clock import Clock, utc_now
from .engine import Recovery
from .errors import ConfigError, SendError
from .logmask import mask_contact, mask_text
from .models import CHANNEL_KINDS, ChannelKind, Message, Receipt, normalize_email, normalize_phone
from .preview import SAMPLE_RECOVERY_URL, sample_checkout
from .render import MessageContext

__all__ = ["TEST_MARK", "SendTestResult", "send_test"]

TEST_MARK = "[TEST] "
"""What a test message starts with (an email: its subject)."""


@dataclass(frozen=True, slots=True)
class SendTestResult:
    """What ``send_test`` did: the message, and the provider's receipt or why it refused."""

    message: Message
    receipt: Receipt | None = None
    error: SendError | None = None

    @property
    def ok(self) -> bool:
        return self.receipt is not None


def _recipient(raw: str, kind: ChannelKind) -> str:
    try:
        value = normalize_email(raw) if kind == "email" else normalize_phone(raw)
    except ValueError as err:
        raise ConfigError(f"--to {raw!r}: {err}", key="to") from None
    if value is None:
        expected = "an email address" if kind == "email" else "a phone number in +E.164 form"
        raise ConfigError(f"--to {raw!r}: expected {expected} for {kind}", key="to")
    return value


def _channel(recovery: Recovery, step: int, to: str, wanted: str | None) -> ChannelKind:
    steps = {s.number: s for s in recovery.policy.steps}
    if step not in steps:
        raise ConfigError(
            f"--step {step}: the schedule has steps {', '.join(map(str, steps))}", key="step"
        )
    if wanted is not None:
        if wanted not in recovery.channels:
            raise ConfigError(
                f"--channel {wanted}: not configured (add a [channels.{wanted}] table)",
                key="channel",
            )
        return next(k for k in CHANNEL_KINDS if k == wanted)
    by_address = ["email"] if "@" in to else ["sms", "whatsapp"]
    for kind in steps[step].channels:
        if kind in recovery.channels and kind in by_address:
            return kind
    raise ConfigError(
        f"step {step} sends by {', '.join(steps[step].channels)}; none of them is configured "
        f"and reaches {mask_contact(to)}: give --channel",
        key="channel",
    )


def _example_link(recovery: Recovery) -> str:
    example = getattr(recovery.links, "example", None)
    return str(example()) if callable(example) else SAMPLE_RECOVERY_URL


def send_test(
    recovery: Recovery,
    *,
    to: str,
    step: int,
    channel: str | None = None,
    locale: str | None = None,
    clock: Clock = utc_now,
) -> SendTestResult:
    """Render ``step`` for ``channel`` (default: the step's first configured channel that can
    reach ``to``) with a sample cart in ``locale`` (default: the shop's), mark it as a test,
    send it, and record the outcome in the store's events. Raises ``ConfigError`` for a bad
    ``to``, ``step`` or ``channel``; a refusal is returned in :attr:`SendTestResult.error`.

    The link goes to ``[shop] home_url`` (a link that works); without one it is as long as
    the real ones would be."""
    kind = _channel(recovery, step, to, channel)
    recipient = _recipient(to, kind)
    now = clock()
    language = locale or recovery.shop.locale
    checkout = sample_checkout(language, worst=False, now=now)
    link = recovery.shop.home_url or _example_link(recovery)
    unsubscribe = recovery.unsubscribe(recipient, kind, language) if recovery.unsubscribe else None
    content = recovery.renderer.render(
        kind,
        step,
        MessageContext(
            checkout=checkout,
            shop=recovery.shop,
            locale=language,
            link=link,
            unsubscribe_url=unsubscribe,
        ),
    )
    if kind == "email":
        content = replace(content, subject=TEST_MARK + (content.subject or ""))
    elif content.template is None:  # a WhatsApp template's text is the approved one
        content = replace(content, text=TEST_MARK + content.text)
    message = Message(
        key=f"test:{now:%Y%m%d%H%M%S}:{secrets.token_hex(4)}",
        channel=kind,
        to=recipient,
        checkout_id="test",
        step=step,
        locale=language,
        content=content,
        unsubscribe_url=unsubscribe,
        metadata={"test": "true"},
    )
    sender = recovery.channels[kind]
    try:
        receipt = sender.send(message)
    except SendError as err:
        reason = mask_text(str(err))
        recovery.store.record_event(
            "test_send_failed",
            clock(),
            step=step,
            channel=kind,
            detail=f"to {mask_contact(recipient)}: {reason}",
        )
        return SendTestResult(message, error=err)
    finally:
        sender.close()
    recovery.store.record_event(
        "test_send",
        clock(),
        step=step,
        channel=kind,
        detail=f"to {mask_contact(recipient)} via {receipt.provider}"
        + (f" ({receipt.provider_id})" if receipt.provider_id else ""),
    )
    return SendTestResult(message, receipt=receipt)
