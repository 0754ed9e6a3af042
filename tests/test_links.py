"""Self-hosted short links and the redirect app, served by a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from wsgiref.types import WSGIApplication

import pytest
import requests

from cartrescue.clock import FrozenClock, utc_now
from cartrescue.config import load_config
from cartrescue.errors import ConfigError
from cartrescue.links import LinkShortener, SelfHostedLinks, add_utm, redirect_app
from cartrescue.store.sqlite import SQLiteStore
from cartrescue.web import make_server
from cartrescue_testing.memory import MemoryChannel

from .test_render import demo_shop_file

START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DESTINATION = (
    "https://nordlys-design.myshopify.com/70712377561/checkouts/ac/Z2NwLWV1cm9wZTE6MDFK"
    "/recover?key=8f2c1a9d7b3e&locale=nb-NO"
)


@pytest.fixture
def store() -> Iterator[SQLiteStore]:
    with SQLiteStore(":memory:") as db:
        yield db


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def links(store: SQLiteStore, clock: FrozenClock) -> SelfHostedLinks:
    return SelfHostedLinks(
        "https://go.nrdl.no/r/",
        store,
        home_url="https://nordlys-design.example/",
        expires_after=timedelta(days=30),
        clock=clock,
    )


@pytest.fixture
def server(links: SelfHostedLinks) -> Iterator[str]:
    """The redirect app behind the standard library's HTTP server on a free loopback port."""
    httpd = make_server(links.app(), "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def get(url: str, **kwargs: object) -> requests.Response:
    return requests.get(url, allow_redirects=False, timeout=5, **kwargs)  # type: ignore[arg-type]


def code_of(link: str) -> str:
    return link.rsplit("/", 1)[1]


# -- making links ---------------------------------------------------------------------------
def test_shortener_protocol(links: SelfHostedLinks) -> None:
    assert isinstance(links, LinkShortener)


def test_links_are_unguessable_and_stable(links: SelfHostedLinks, store: SQLiteStore) -> None:
    first = links.shorten(DESTINATION, checkout_id="c1", step=1, channel="sms")
    assert first.startswith("https://go.nrdl.no/r/")
    code = code_of(first)
    assert len(code) == 8
    assert code.isascii()
    assert code.isalnum()
    assert links.shorten("https://other.example/", checkout_id="c1", step=1, channel="sms") == first
    others = {
        links.shorten(DESTINATION, checkout_id="c1", step=2, channel="sms"),
        links.shorten(DESTINATION, checkout_id="c1", step=1, channel="email"),
        links.shorten(DESTINATION, checkout_id="c2", step=1, channel="sms"),
    }
    assert first not in others
    assert len(others) == 3
    record = store.link(code)
    assert record is not None
    assert (record.checkout_id, record.step, record.channel) == ("c1", 1, "sms")
    assert record.destination == DESTINATION
    assert record.expires_at == START + timedelta(days=30)
    assert record.home_url == "https://nordlys-design.example/"


def test_codes_are_spread_over_base62(store: SQLiteStore) -> None:
    links = SelfHostedLinks("https://s.no", store, code_length=7)
    codes = [
        code_of(links.shorten(DESTINATION, checkout_id=str(i), step=1, channel="sms"))
        for i in range(300)
    ]
    assert all(len(c) == 7 for c in codes)
    assert len(set(codes)) == 300
    assert links.base_url == "https://s.no/"
    used = set("".join(codes))
    assert any(c.isdigit() for c in used)
    assert any(c.islower() for c in used)
    assert any(c.isupper() for c in used)
    assert len(links.example()) == len("https://s.no/") + 7


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"base_url": "go.nrdl.no/r/"}, "links.base_url"),
        ({"base_url": "javascript:alert(1)//"}, "links.base_url"),
        ({"base_url": "https://go.nrdl.no/r/?x=1"}, "links.base_url"),
        ({"base_url": "https://go.nrdl.no/r/ x"}, "links.base_url"),
        ({"base_url": "https://s.no/", "code_length": 6}, "links.code_length"),
        ({"base_url": "https://s.no/", "code_length": "8"}, "links.code_length"),
        ({"base_url": "https://s.no/", "expires_after": timedelta(0)}, "links.expires_after"),
        ({"base_url": "https://s.no/", "home_url": "ftp://x"}, "shop.home_url"),
    ],
)
def test_bad_settings_name_the_key(store: SQLiteStore, kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SelfHostedLinks(store=store, **kwargs)  # type: ignore[arg-type]
    assert caught.value.key == key


def test_a_destination_must_be_a_web_url(links: SelfHostedLinks) -> None:
    with pytest.raises(ConfigError):
        links.shorten("javascript:alert(1)", checkout_id="c1", step=1, channel="sms")


def test_add_utm_leaves_the_query_as_it_was() -> None:
    url = add_utm("https://s.example/r?key=a%2Fb&flag&x=%7E", {"utm_source": "cartrescue"})
    assert url == "https://s.example/r?key=a%2Fb&flag&x=%7E&utm_source=cartrescue"
    assert add_utm("https://s.example/r", {"utm_medium": "e mail"}) == (
        "https://s.example/r?utm_medium=e+mail"
    )


def test_add_utm_keeps_what_is_there() -> None:
    url = add_utm(
        "https://s.example/p?a=1&utm_source=shop#top", {"utm_source": "x", "utm_medium": "sms"}
    )
    assert url == "https://s.example/p?a=1&utm_source=shop&utm_medium=sms#top"


# -- the redirect app -----------------------------------------------------------------------
def test_known_code_redirects_with_utm_and_records_the_click(
    links: SelfHostedLinks, store: SQLiteStore, server: str
) -> None:
    code = code_of(links.shorten(DESTINATION, checkout_id="c1", step=2, channel="sms"))
    response = get(f"{server}/r/{code}")
    assert response.status_code == 302
    assert response.headers["Cache-Control"] == "no-store"
    location = urlsplit(response.headers["Location"])
    assert location.netloc == "nordlys-design.myshopify.com"
    assert location.path == urlsplit(DESTINATION).path
    assert parse_qs(location.query) == {
        "key": ["8f2c1a9d7b3e"],
        "locale": ["nb-NO"],
        "utm_source": ["cartrescue"],
        "utm_medium": ["sms"],
        "utm_campaign": ["abandoned_checkout"],
        "utm_content": ["step-2"],
    }
    assert store.stats(START).clicks == 1
    rows = store._query("SELECT code, checkout_id, step, channel, at FROM clicks")
    assert rows == [(code, "c1", 2, "sms", START.isoformat(timespec="microseconds"))]


def test_following_the_redirect_reaches_the_destination(
    links: SelfHostedLinks, server: str
) -> None:
    """The whole round trip over HTTP: short link → 302 → a second local server."""
    seen: list[str] = []

    def shop(environ: dict[str, object], start_response):  # type: ignore[no-untyped-def]
        seen.append(f"{environ['PATH_INFO']}?{environ['QUERY_STRING']}")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"checkout"]

    httpd = make_server(shop, "127.0.0.1", 0)  # type: ignore[arg-type]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        target = f"http://127.0.0.1:{httpd.server_port}/checkouts/1/recover?key=k"
        short = links.shorten(target, checkout_id="c9", step=1, channel="email")
        response = requests.get(server + urlsplit(short).path, timeout=5)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert response.status_code == 200
    assert response.text == "checkout"
    assert seen == [
        "/checkouts/1/recover?key=k&utm_source=cartrescue&utm_medium=email"
        "&utm_campaign=abandoned_checkout&utm_content=step-1"
    ]


def test_the_app_answers_under_any_prefix(links: SelfHostedLinks, server: str) -> None:
    code = code_of(links.shorten(DESTINATION, checkout_id="c1", step=1, channel="sms"))
    assert get(f"{server}/{code}").status_code == 302
    assert get(f"{server}/links/r/{code}/").status_code == 302


def test_unknown_code_is_404(links: SelfHostedLinks, store: SQLiteStore, server: str) -> None:
    links.shorten(DESTINATION, checkout_id="c1", step=1, channel="sms")
    for path in ("/r/Zz9Zz9Zz", "/r/", "/", "/r/short", "/favicon.ico"):
        response = get(server + path)
        assert response.status_code == 404, path
        assert "Location" not in response.headers
    assert store.stats(START).clicks == 0


@pytest.mark.parametrize(
    "path",
    [
        "//evil.example/",
        "/r//evil.example",
        "/r/https://evil.example/",
        "/r/%2F%2Fevil.example",
        "/r/..%2F..%2Fevil.example",
        "/r/CODE/../../evil.example",
        "/r/CODE%0d%0aLocation:%20https://evil.example/",
        "/r/CODE?next=https://evil.example/",
        "/r/CODE#https://evil.example/",
        "/r/evil.example",
        "/r/@evil.example",
    ],
)
def test_a_crafted_code_cannot_redirect_to_another_host(
    links: SelfHostedLinks, server: str, path: str
) -> None:
    code = code_of(links.shorten(DESTINATION, checkout_id="c1", step=1, channel="sms"))
    response = get(server + path.replace("CODE", code))
    location = response.headers.get("Location")
    if location is not None:
        assert response.status_code == 302
        assert urlsplit(location).netloc == "nordlys-design.myshopify.com"
    else:
        assert response.status_code == 404
    assert "evil" not in (location or "")


def test_expired_link_leads_to_the_home_page(
    links: SelfHostedLinks, store: SQLiteStore, clock: FrozenClock, server: str
) -> None:
    code = code_of(links.shorten(DESTINATION, checkout_id="c1", step=1, channel="sms"))
    clock.advance(timedelta(days=30))
    response = get(f"{server}/r/{code}")
    assert response.status_code == 302
    assert response.headers["Location"] == "https://nordlys-design.example/"
    assert store.stats(START).clicks == 0


def test_expired_link_without_a_home_page_is_gone(store: SQLiteStore, clock: FrozenClock) -> None:
    links = SelfHostedLinks("https://s.no/", store, expires_after=timedelta(hours=1), clock=clock)
    code = code_of(links.shorten(DESTINATION, checkout_id="c1", step=1, channel="sms"))
    clock.advance(timedelta(hours=2))
    status, headers = call(links.app(), f"/{code}")
    assert status == "410 Gone"
    assert "Location" not in headers


def test_head_and_preview_robots_are_redirected_but_not_counted(
    links: SelfHostedLinks, store: SQLiteStore, server: str
) -> None:
    code = code_of(links.shorten(DESTINATION, checkout_id="c1", step=1, channel="sms"))
    head = requests.head(f"{server}/r/{code}", allow_redirects=False, timeout=5)
    assert head.status_code == 302
    assert head.content == b""
    bot = get(f"{server}/r/{code}", headers={"User-Agent": "WhatsApp/2.23.20.0 A"})
    assert bot.status_code == 302
    assert store.stats(START).clicks == 0
    get(f"{server}/r/{code}", headers={"User-Agent": "Mozilla/5.0 (iPhone)"})
    assert store.stats(START).clicks == 1


def test_only_get_and_head(links: SelfHostedLinks, server: str) -> None:
    code = code_of(links.shorten(DESTINATION, checkout_id="c1", step=1, channel="sms"))
    response = requests.post(f"{server}/r/{code}", allow_redirects=False, timeout=5)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"


def test_utm_can_be_switched_off(store: SQLiteStore) -> None:
    links = SelfHostedLinks("https://s.no/", store, utm=False)
    code = code_of(links.shorten(DESTINATION, checkout_id="c1", step=1, channel="sms"))
    status, headers = call(links.app(), f"/{code}")
    assert status == "302 Found"
    assert headers["Location"] == DESTINATION


def test_a_stored_destination_that_is_not_a_web_url_is_never_followed(
    store: SQLiteStore,
) -> None:
    from cartrescue.store.base import LinkRecord

    store.save_link(
        LinkRecord("Abcdefg1", "c1", 1, "sms", "javascript:alert(1)", None, START, None)
    )
    status, headers = call(redirect_app(store), "/Abcdefg1")
    assert status == "404 Not Found"
    assert "Location" not in headers


def call(app: WSGIApplication, path: str, method: str = "GET") -> tuple[str, dict[str, str]]:
    """Call a WSGI app directly, for cases that need no network."""
    seen: dict[str, object] = {}

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    b"".join(app({"REQUEST_METHOD": method, "PATH_INFO": path}, start_response))  # type: ignore[arg-type]
    return str(seen["status"]), dict(seen["headers"])  # type: ignore[call-overload]


# -- config and the engine ------------------------------------------------------------------
CONFIG = """
[shop]
name = "Nordlys Design"
locale = "nb"
timezone = "Europe/Oslo"
home_url = "https://nordlys-design.example"

[connector]
type = "cartrescue.demo:DemoConnector"
data = "shop.json"

[channels.sms]
type = "cartrescue_testing:MemoryChannel"

[store]
path = ":memory:"

[links]
base_url = "https://go.nrdl.no/r/"
code_length = 7
expires_after = "14d"
utm_campaign = "winback"
"""


def test_config_builds_the_shortener(tmp_path: Path) -> None:
    config = load_config(None, text=CONFIG, env={})
    with SQLiteStore(":memory:") as db:
        links = config.links(db)
    assert isinstance(links, SelfHostedLinks)
    assert (links.base_url, links.code_length, links.expires_after) == (
        "https://go.nrdl.no/r/",
        7,
        timedelta(days=14),
    )
    assert links.utm_campaign == "winback"
    assert links.home_url == "https://nordlys-design.example"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("[links]\ncode_length = 8\n", "links.base_url"),
        ('[links]\nbase_url = "https://s.no/"\nbase = 1\n', "links.base"),
        ('[links]\nbase_url = "https://s.no/"\ntype = "bitly"\n', "links.type"),
        ('[links]\nbase_url = "https://s.no/"\nexpires_after = "soon"\n', "links.expires_after"),
        ('[links]\nbase_url = "https://s.no/"\nutm = "yes"\n', "links.utm"),
        ('[links]\nbase_url = "https://s.no/"\nutm_source = ""\n', "links.utm_source"),
        ('[links]\nbase_url = "s.no"\n', "links.base_url"),
    ],
)
def test_config_mistakes_name_the_key(table: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, text=table, env={})
    assert caught.value.key == key


def test_no_links_table_means_no_shortener() -> None:
    with SQLiteStore(":memory:") as db:
        assert load_config(None, text="", env={}).links(db) is None


def _noon_zone(now: datetime) -> str:
    """An IANA zone where it is about noon at ``now``, so no quiet hours get in the way."""
    offset = (12 - now.hour + 12) % 24 - 12  # in -12..11
    return "Etc/GMT" + (f"{-offset:+d}" if offset else "")


def test_a_pass_sends_short_links_that_redirect(tmp_path: Path) -> None:
    # The demo connector times its checkouts from the real clock; so does this pass.
    clock = FrozenClock(utc_now())
    shop_file = demo_shop_file(tmp_path, timezone=_noon_zone(clock()))
    path = tmp_path / "cartrescue.toml"
    path.write_text(CONFIG.replace('"shop.json"', json.dumps(str(shop_file))), encoding="utf-8")
    config = load_config(path, env={})
    store = SQLiteStore(":memory:")
    store.start_at(clock() - timedelta(days=1))
    recovery = config.recovery(clock=clock, store=store)
    report = recovery.run()
    assert report.counts["sent"] == 1
    sms = recovery.channels["sms"]
    assert isinstance(sms, MemoryChannel)
    text = sms.sent[0].text
    link = next(word for word in text.split() if word.startswith("https://go.nrdl.no/r/"))
    assert len(link) == len("https://go.nrdl.no/r/") + 7
    assert "checkouts/77/recover" not in text
    links = config.links(store)
    assert links is not None
    status, headers = call(links.app(), urlsplit(link).path)
    assert status == "302 Found"
    assert "checkouts/77/recover?key=77demo" in headers["Location"]
    assert "utm_campaign=winback" in headers["Location"]
    assert store.stats(clock()).clicks == 1
