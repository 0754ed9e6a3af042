import pytest
import requests
import responses

from cartrescue.errors import ConnectorAuthError, ConnectorError
from cartrescue.http import HttpClient, parse_retry_after, redact

BASE = "https://api.example.test"


def client(**kw):
    waits = []
    c = HttpClient("demo", BASE, sleep=waits.append, auth_hint="check the token", **kw)
    return c, waits


@responses.activate
def test_get_retries_429_honouring_retry_after_then_succeeds():
    responses.get(f"{BASE}/x", status=429, headers={"Retry-After": "2.0"})
    responses.get(f"{BASE}/x", status=503)
    responses.get(f"{BASE}/x", json={"ok": True})
    c, waits = client()
    assert c.json("GET", "/x") == {"ok": True}
    assert len(responses.calls) == 3
    assert waits[0] == 2.0
    assert 0 < waits[1] <= 60


@responses.activate
def test_post_is_not_retried():
    responses.post(f"{BASE}/x", status=503)
    c, _ = client()
    with pytest.raises(ConnectorError) as info:
        c.request("POST", "/x")
    assert info.value.status == 503
    assert len(responses.calls) == 1


@responses.activate
def test_401_is_auth_error_without_secret():
    responses.get(f"{BASE}/x", status=401, body='{"errors":"token=shpat_SECRET invalid"}')
    c, _ = client(secrets=("shpat_SECRET",))
    with pytest.raises(ConnectorAuthError) as info:
        c.request("GET", "/x")
    assert "check the token" in str(info.value)
    assert "shpat_SECRET" not in str(info.value) + (info.value.snippet or "")


@responses.activate
def test_connection_errors_exhaust_attempts():
    responses.get(f"{BASE}/x", body=requests.ConnectionError("refused"))
    c, waits = client(attempts=3)
    with pytest.raises(ConnectorError, match="after 3 attempt"):
        c.request("GET", "/x")
    assert len(waits) == 2


def test_parse_retry_after_number_and_date():
    from datetime import UTC, datetime

    assert parse_retry_after("2.0") == 2.0
    assert parse_retry_after(None) is None
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=lambda: now) == 30.0
    assert parse_retry_after("soon") is None


def test_redact_masks_credentials_and_contacts():
    text = redact('{"access_token": "abc123", "email": "kari@example.no", "phone": "+4791234567"}')
    assert "abc123" not in text
    assert "kari@" not in text
    assert "91234567" not in text


@responses.activate
def test_a_connection_error_never_carries_a_query_string_credential():
    url = f"{BASE}/x?consumer_key=ck_live&consumer_secret=cs_SECRET"
    responses.get(url, body=requests.ConnectionError(f"Max retries exceeded with url: {url}"))
    c, _ = client(attempts=2, secrets=("cs_SECRET", "ck_live"))
    with pytest.raises(ConnectorError) as info:
        c.request("GET", "/x", params={"consumer_key": "ck_live", "consumer_secret": "cs_SECRET"})
    chain, error = [], info.value
    while error is not None:
        chain.append(f"{type(error).__name__}: {error}")
        # what a traceback shows: the cause, else the context unless suppressed
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    assert "cs_SECRET" not in "\n".join(chain)
    assert "ConnectionError" in str(info.value)


@responses.activate
def test_classify_is_the_hook_that_decides_what_an_answer_means():
    from cartrescue.http import Verdict

    class Busy(HttpClient):
        def classify(self, response):
            if response.headers.get("X-Busy"):
                return Verdict.RETRY
            return super().classify(response)

    responses.get(f"{BASE}/x", json={}, headers={"X-Busy": "1", "Retry-After": "3"})
    responses.get(f"{BASE}/x", json={"ok": True})
    waits = []
    c = Busy("demo", BASE, sleep=waits.append)
    assert c.json("GET", "/x") == {"ok": True}
    assert waits == [3.0]


def test_cursor_paginator_follows_end_cursor_until_no_next_page():
    from cartrescue.http import CursorPaginator, PageRequest, paginate

    pages = {
        None: {"nodes": [1, 2], "pageInfo": {"hasNextPage": True, "endCursor": "c1"}},
        "c1": {"nodes": [3], "pageInfo": {"hasNextPage": False, "endCursor": "c2"}},
    }
    asked = []

    def fetch(request):
        asked.append(dict(request.params))
        return pages[request.params.get("after")], {}

    got = list(paginate(fetch, CursorPaginator(), PageRequest("graphql", {"first": 2})))
    assert [p["nodes"] for p in got] == [[1, 2], [3]]
    assert asked == [{"first": 2}, {"first": 2, "after": "c1"}]


def test_cursor_paginator_refuses_a_next_page_without_a_cursor():
    from cartrescue.http import CursorPaginator

    with pytest.raises(ConnectorError, match="no cursor"):
        CursorPaginator().update_state({"pageInfo": {"hasNextPage": True}}, {})


@responses.activate
def test_header_link_paginator_sends_only_the_query_of_the_next_link():
    from cartrescue.http import HeaderLinkPaginator, PageRequest, paginate

    next_url = "https://elsewhere.test/x.json?limit=2&page_info=abc"
    responses.get(
        f"{BASE}/x.json",
        json=[1, 2],
        headers={"Link": f'<{next_url}>; rel="next"'},
        match=[responses.matchers.query_param_matcher({"limit": "2", "status": "open"})],
    )
    responses.get(
        f"{BASE}/x.json",
        json=[3],
        match=[responses.matchers.query_param_matcher({"limit": "2", "page_info": "abc"})],
    )
    c, _ = client()

    def fetch(request):
        response = c.request("GET", request.path, params=request.params)
        return response.json(), response.headers

    first = PageRequest("x.json", {"limit": 2, "status": "open"})
    assert list(paginate(fetch, HeaderLinkPaginator(), first)) == [[1, 2], [3]]


@pytest.mark.parametrize(
    ("sizes", "total", "pages"),
    [
        ([2, 2, 1], "3", 3),  # the header says when to stop
        ([2, 2, 2], "2", 2),  # even when the page is full
        ([2, 2, 1], None, 3),  # without it, a short page is the last
        ([2, 0], "bad", 2),  # and an empty page always is
    ],
)
def test_page_number_paginator(sizes, total, pages):
    from cartrescue.http import PageNumberPaginator, PageRequest, paginate

    asked = []

    def fetch(request):
        asked.append(request.params["page"])
        size = sizes[request.params["page"] - 1]
        return list(range(size)), ({"X-WP-TotalPages": total} if total else {})

    got = list(paginate(fetch, PageNumberPaginator(2), PageRequest("orders", {"per_page": 2})))
    assert len(got) == pages
    assert asked == list(range(1, pages + 1))
