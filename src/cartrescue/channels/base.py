"""The Channel protocol: how cartrescue delivers a message.

A channel from another package registers under the entry-point group ``cartrescue.channels``
and is configured as ``[channels.sms] type = "mychannel"``; the other keys of the table are
passed to its constructor (``*_env`` keys read from the environment).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..models import ChannelKind, Message, Receipt

__all__ = ["Channel"]


@runtime_checkable
class Channel(Protocol):
    """Delivers messages of one kind.

    ``kind`` is ``"sms"``, ``"whatsapp"`` or ``"email"``: it decides which rendered content
    the channel receives and which consent the engine checks.

    ``send(message)`` delivers one message and returns a :class:`~cartrescue.models.Receipt`.
    It raises :class:`~cartrescue.errors.PermanentSendError` when retrying cannot help
    (invalid number, unsubscribed; set ``opted_out=True`` when the provider says the
    recipient opted out), :class:`~cartrescue.errors.TransientSendError` when the provider
    certainly did not accept it and a later try may (after its own safe retries), and
    :class:`~cartrescue.errors.SendOutcomeUnknown` when the request may have been accepted
    (a timeout after sending): that message is never sent again. It never returns a failure
    silently.

    ``close()`` is called at the end of a pass; release connections there.
    """

    kind: ChannelKind

    def send(self, message: Message) -> Receipt: ...

    def close(self) -> None: ...
