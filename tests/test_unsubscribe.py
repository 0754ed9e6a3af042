"""Unsubscribe tokens: opaque, expiring, rotatable, strict; and the one-click flow through them."""

import base64
import string
from datetime import UTC, datetime, timedelta

import pytest

from cartrescue.clock import FrozenClock
from cartrescue.errors import ConfigError
from cartrescue.inbound import InboundRequest, InboundResponse
from cartrescue.store.sqlite import SQLiteStore
from cartrescue.unsubscribe import DEFAULT_TTL, UnsubscribeLinks
from cartrescue.web import make_app
from cartrescue.web_settings import web_settings
from tests.test_web import call

PUBLIC = "https://shop.example/cartrescue"
OLD = "the-old-unsubscribe-secret-0123"
NEW = "the-new-unsubscribe-secret-4567"
SENT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
EMAIL = "kari.nordmann@example.no"


def token_at(when, secret=NEW, recipient=EMAIL, channel="email"):
    return UnsubscribeLinks(PUBLIC, secret, clock=FrozenClock(when)).token(recipient, channel)


def reader_at(when, secret=NEW, **kwargs):
    return UnsubscribeLinks(PUBLIC, secret, clock=FrozenClock(when), **kwargs)


def test_a_token_names_nobody():
    token = token_at(SENT)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    for form in (EMAIL, "kari.nordmann", "example.no"):
        assert form not in token
        assert form.encode() not in raw
    assert base64.urlsafe_b64encode(EMAIL.encode()).rstrip(b"=").decode()[:12] not in token
    phone = token_at(SENT, recipient="+4791234567", channel="sms")
    assert "91234567" not in phone
    assert b"91234567" not in base64.urlsafe_b64decode(phone + "=" * (-len(phone) % 4))


def test_two_tokens_for_the_same_person_differ_and_both_read_back():
    first, second = token_at(SENT), token_at(SENT)
    assert first != second
    assert reader_at(SENT).read(first) == reader_at(SENT).read(second) == (EMAIL, "email")


def test_a_token_expires_after_a_year_by_default():
    token = token_at(SENT)
    assert timedelta(days=365) == DEFAULT_TTL
    assert reader_at(SENT + DEFAULT_TTL).read(token) == (EMAIL, "email")
    assert reader_at(SENT + DEFAULT_TTL + timedelta(seconds=1)).read(token) is None


def test_the_lifetime_is_configurable():
    token = token_at(SENT)
    short = timedelta(days=30)
    assert reader_at(SENT + short, ttl=short).read(token) == (EMAIL, "email")
    assert reader_at(SENT + short + timedelta(seconds=1), ttl=short).read(token) is None
    with pytest.raises(ConfigError) as info:
        UnsubscribeLinks(PUBLIC, NEW, ttl=timedelta(0))
    assert info.value.key == "web.unsubscribe_ttl_days"


def test_rotation_newest_makes_tokens_every_listed_secret_reads_them():
    old_token = token_at(SENT, secret=OLD)
    rotated = reader_at(SENT, secret=[NEW, OLD])
    assert rotated.read(old_token) == (EMAIL, "email")
    new_token = rotated.token(EMAIL, "email")
    assert reader_at(SENT, secret=NEW).read(new_token) == (EMAIL, "email")
    assert reader_at(SENT, secret=OLD).read(new_token) is None
    assert reader_at(SENT, secret=NEW).read(old_token) is None  # the old secret retired


def test_any_extra_character_makes_a_token_invalid():
    token = token_at(SENT)
    reader = reader_at(SENT)
    assert reader.read(token) is not None
    for extra in [*string.ascii_letters, *string.digits, "-", "_", "=", ".", "/", " ", "%20"]:
        assert reader.read(token + extra) is None, extra
        assert reader.read(extra + token) is None, extra


def test_any_changed_character_makes_a_token_invalid():
    token = token_at(SENT)
    reader = reader_at(SENT)
    alphabet = string.ascii_letters + string.digits + "-_"
    for index, char in enumerate(token):
        other = alphabet[(alphabet.index(char) + 1) % len(alphabet)]
        assert reader.read(token[:index] + other + token[index + 1 :]) is None, index
    assert reader.read(token[:-1]) is None


def test_every_secret_must_be_long():
    with pytest.raises(ConfigError) as info:
        UnsubscribeLinks(PUBLIC, [NEW, "short"])
    assert info.value.key == "web.unsubscribe_secret"
    with pytest.raises(ConfigError):
        UnsubscribeLinks(PUBLIC, [])


def test_web_settings_read_rotation_and_lifetime():
    table = {
        "public_url": PUBLIC,
        "unsubscribe_secret_env": "CR_UNSUB",
        "unsubscribe_previous_secrets_env": "CR_UNSUB_OLD",
        "unsubscribe_ttl_days": 90,
    }
    older = "an-even-older-secret-0123456"
    env = {"CR_UNSUB": NEW, "CR_UNSUB_OLD": f"{OLD}, {older}"}
    settings = web_settings({"web": table}, env)
    assert settings is not None
    assert settings.unsubscribe_secrets == (NEW, OLD, older)
    assert settings.unsubscribe_ttl == timedelta(days=90)
    links = settings.unsubscribe_links(clock=FrozenClock(SENT + timedelta(days=90)))
    assert links is not None
    assert links.read(token_at(SENT, secret=older)) == (EMAIL, "email")
    assert links.read(token_at(SENT - timedelta(days=1), secret=NEW)) is None


PREVIOUS = "web.unsubscribe_previous_secrets"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"unsubscribe_ttl_days": 0}, "web.unsubscribe_ttl_days"),
        ({"unsubscribe_ttl_days": "365"}, "web.unsubscribe_ttl_days"),
        (
            {"unsubscribe_previous_secrets_env": "CR_UNSUB_OLD"},
            "web.unsubscribe_previous_secrets_env",
        ),
    ],
)
def test_web_settings_name_the_wrong_unsubscribe_key(table, key):
    with pytest.raises(ConfigError) as info:
        web_settings({"web": {"public_url": PUBLIC, **table}}, {"CR_UNSUB_OLD": OLD})
    assert info.value.key == key


# -- the one-click flow (RFC 8058) through the web app ---------------------------------------
@pytest.fixture
def store():
    with SQLiteStore(":memory:") as store:
        yield store


def test_one_click_post_with_a_rotated_secret_unsubscribes(store):
    now = SENT + timedelta(days=200)
    links = reader_at(now, secret=[NEW, OLD])
    app = make_app(store, public_url=PUBLIC, unsubscribe=links, clock=FrozenClock(now))
    path = f"/unsubscribe/{token_at(SENT, secret=OLD)}"
    status, _, page = call(app, "POST", path, b"List-Unsubscribe=One-Click")
    assert status == 200
    assert b"You are unsubscribed" in page
    assert EMAIL.encode() not in page
    assert store.optouts_for([EMAIL]) == {"email"}


def test_an_expired_or_padded_link_is_refused_and_changes_nothing(store):
    now = SENT + timedelta(days=366)
    app = make_app(store, public_url=PUBLIC, unsubscribe=reader_at(now), clock=FrozenClock(now))
    expired = f"/unsubscribe/{token_at(SENT)}"
    assert call(app, "POST", expired, b"List-Unsubscribe=One-Click")[0] == 403
    fresh = f"/unsubscribe/{token_at(now)}"
    assert call(app, "POST", fresh + "x", b"List-Unsubscribe=One-Click")[0] == 403
    assert call(app, "POST", fresh + "/", b"List-Unsubscribe=One-Click")[0] == 403
    assert store.list_optouts() == []
    assert call(app, "POST", fresh, b"List-Unsubscribe=One-Click")[0] == 200


# -- the inbound-handler seam ------------------------------------------------------------------
class Echo:
    route = "/echo/"
    methods = ("POST",)

    def __init__(self):
        self.seen = []

    def handle(self, request: InboundRequest) -> InboundResponse:
        self.seen.append(request)
        return InboundResponse.text(202, request.body.decode())


def test_web_routes_to_an_inbound_handler_by_route_and_method(store):
    echo = Echo()
    app = make_app(store, public_url=PUBLIC, handlers=[echo])
    status, _, body = call(app, "POST", "/echo/a", b"hello", headers={"X-Thing": "1"}, query="q=1")
    assert (status, body) == (202, b"hello")
    request = echo.seen[0]
    assert request.url == f"{PUBLIC}/echo/a?q=1"
    assert request.headers["X-Thing"] == "1"
    assert call(app, "GET", "/echo/a")[0] == 405
    assert call(app, "POST", "/echoes")[0] == 404
    assert len(echo.seen) == 1
