import pytest

from cartrescue.models import Content, Message


def make_message(kind="sms", to="+4791234567", *, key=None, unsubscribe_url=None, **content):
    """A rendered message as the engine hands it to a channel."""
    key = key or f"ch_1001:1:{kind}"
    content.setdefault(
        "text", "Your cart at Nordlys Design is waiting: https://nordlys.example/r/Ab3"
    )
    if kind == "email":
        content.setdefault("subject", "You left something behind")
        content.setdefault("html", "<p>Your cart is waiting</p>")
    if kind == "whatsapp":
        content.setdefault("template", "cart_reminder_1")
        content.setdefault("language", "nb")
        content.setdefault("parameters", ("Kari", "Nordlys Design"))
        content.setdefault("button_parameter", "Ab3")
    return Message(
        key=key,
        channel=kind,
        to=to,
        checkout_id=key.split(":")[0],
        step=1,
        locale="nb",
        content=Content(**content),
        unsubscribe_url=unsubscribe_url,
    )


@pytest.fixture
def message():
    return make_message
