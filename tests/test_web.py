import base64
import contextlib
import hashlib
import hmac
import io
import json
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode

import pytest
import requests

from cartrescue.channels.twilio_inbound import twilio_signature
from cartrescue.clock import FrozenClock
from cartrescue.config import load_config
from cartrescue.errors import ConfigError
from cartrescue.inbound import keyword
from cartrescue.store.sqlite import SQLiteStore
from cartrescue.unsubscribe import UnsubscribeLinks
from cartrescue.web import make_app, serve
from cartrescue.web_settings import web_settings
from tests.conftest import load_fixture

PUBLIC = "https://shop.example/cartrescue"
TWILIO_TOKEN = "tw-auth-token-0123456789abcdef"
APP_SECRET = "meta-app-secret-0123456789"
VERIFY = "verify-me-0123"
UNSUB_SECRET = "unsubscribe-secret-0123456789"
NOW = datetime(2025, 6, 18, 12, 0, tzinfo=UTC)


@pytest.fixture
def store():
    with SQLiteStore(":memory:") as store:
        yield store


@pytest.fixture
def app(store):
    return make_app(
        store,
        public_url=PUBLIC,
        twilio_auth_token=TWILIO_TOKEN,
        whatsapp_app_secret=APP_SECRET,
        whatsapp_verify_token=VERIFY,
        unsubscribe_secret=UNSUB_SECRET,
        clock=FrozenClock(NOW),
    )


def call(app, method, path, body=b"", headers=None, query=""):
    """Call a WSGI app as a server would; return (status code, headers, body)."""
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
    }
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    seen = {}

    def start_response(status, response_headers):
        seen["status"] = int(status.split()[0])
        seen["headers"] = dict(response_headers)

    data = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], data


@contextlib.contextmanager
def serving(app):
    """Serve ``app`` on a loopback port for the block; yield its base URL."""
    started = threading.Event()
    holder = {}

    def ready(server):
        holder["server"] = server
        started.set()

    thread = threading.Thread(target=serve, args=(app, "127.0.0.1", 0), kwargs={"ready": ready})
    thread.start()
    try:
        assert started.wait(5)
        yield f"http://127.0.0.1:{holder['server'].server_port}"
    finally:
        if "server" in holder:
            holder["server"].shutdown()
        thread.join(5)


def hand_signed_twilio(url, body):
    """X-Twilio-Signature computed by hand from twilio.com/docs/usage/security."""
    params = sorted(parse_qsl(body.decode(), keep_blank_values=True))
    data = url + "".join(k + v for k, v in params)
    return base64.b64encode(hmac.new(TWILIO_TOKEN.encode(), data.encode(), "sha1").digest())


# -- Twilio ---------------------------------------------------------------------------------
def test_twilio_signature_matches_the_documented_example():
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675310",
        "Digits": "1234",
        "From": "+14158675310",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params.items()) == "GvWf1cFY/Q7PnoempGyD5oXAezc="


def test_a_signed_stop_opts_the_number_out_of_sms(app, store):
    body = load_fixture("twilio/inbound_stop.form")
    signature = hand_signed_twilio(f"{PUBLIC}/twilio/sms", body).decode()
    status, headers, data = call(
        app, "POST", "/twilio/sms", body, {"X-Twilio-Signature": signature}
    )
    assert status == 200
    assert headers["Content-Type"].startswith("text/xml")
    assert data == b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    assert store.optouts_for(["+4791234567"]) == {"sms"}
    (entry,) = store.list_optouts()
    assert entry.source == "twilio"
    assert entry.at == NOW
    assert ("opt_out", "twilio") in store.events()


def test_an_invalid_signature_is_403_and_changes_nothing(app, store):
    body = load_fixture("twilio/inbound_stop.form")
    for signature in ("", "bm90IGEgc2lnbmF0dXJl", hand_signed_twilio("http://evil/", body)):
        status, _, _ = call(
            app,
            "POST",
            "/twilio/sms",
            body,
            {"X-Twilio-Signature": signature if isinstance(signature, str) else signature.decode()},
        )
        assert status == 403
    assert store.list_optouts() == []
    assert store.events() == []


def test_a_tampered_body_is_403(app, store):
    body = load_fixture("twilio/inbound_stop.form")
    signature = hand_signed_twilio(f"{PUBLIC}/twilio/sms", body).decode()
    forged = body.replace(b"From=%2B4791234567", b"From=%2B4741234568")
    status, _, _ = call(app, "POST", "/twilio/sms", forged, {"X-Twilio-Signature": signature})
    assert status == 403
    assert store.list_optouts() == []


def test_the_query_string_is_part_of_the_signed_url(app, store):
    body = load_fixture("twilio/inbound_stop.form")
    signature = hand_signed_twilio(f"{PUBLIC}/twilio/sms?shop=nordlys", body).decode()
    status, _, _ = call(
        app, "POST", "/twilio/sms", body, {"X-Twilio-Signature": signature}, query="shop=nordlys"
    )
    assert status == 200
    assert store.optouts_for(["+4791234567"]) == {"sms"}


def send_sms(app, body_text, sender="+4791234567"):
    body = urlencode({"Body": body_text, "From": sender, "To": "+14155552671"}).encode()
    signature = hand_signed_twilio(f"{PUBLIC}/twilio/sms", body).decode()
    return call(app, "POST", "/twilio/sms", body, {"X-Twilio-Signature": signature})


def test_start_opts_back_in_and_other_texts_change_nothing(app, store):
    send_sms(app, "unsubscribe")
    assert store.optouts_for(["+4791234567"]) == {"sms"}
    send_sms(app, "Is the blue one in stock?")
    assert store.optouts_for(["+4791234567"]) == {"sms"}
    send_sms(app, " Start ")
    assert store.optouts_for(["+4791234567"]) == set()


def test_start_by_sms_does_not_undo_an_email_opt_out(app, store):
    store.add_optout("+4791234567", "email", "cli", NOW)
    send_sms(app, "START")
    assert store.optouts_for(["+4791234567"]) == {"email"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", "stop"),
        ("stop.", "stop"),
        ("  Quit! ", "stop"),
        ("STOPALL", "stop"),
        ("optout", "stop"),
        ("Stop promotions", "stop"),
        ("START", "start"),
        ("yes", "start"),
        ("unstop", "start"),
        ("please stop", None),
        ("stopp", "stop"),  # Norwegian and Hungarian
        ("stopper", None),
        ("", None),
    ],
)
def test_keywords(body, expected):
    assert keyword(body) == expected


def test_an_unparseable_sender_is_400(app, store):
    status, _, _ = send_sms(app, "STOP", sender="not-a-number")
    assert status == 400
    assert store.list_optouts() == []


def test_endpoints_without_a_secret_are_not_mounted(store):
    bare = make_app(store, public_url=PUBLIC)
    assert call(bare, "POST", "/twilio/sms")[0] == 404
    assert call(bare, "POST", "/whatsapp")[0] == 404
    assert call(bare, "GET", "/unsubscribe/x.y")[0] == 404
    assert call(bare, "GET", "/healthz")[0] == 200


def test_wrong_method_is_405(app):
    assert call(app, "GET", "/twilio/sms")[0] == 405


# -- WhatsApp -------------------------------------------------------------------------------
def meta_signed(body):
    return "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()


def post_whatsapp(app, body, signature=None):
    headers = {"X-Hub-Signature-256": signature or meta_signed(body)}
    return call(app, "POST", "/whatsapp", body, headers)


def test_whatsapp_verification_handshake(app):
    query = urlencode(
        {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": VERIFY}
    )
    assert call(app, "GET", "/whatsapp", query=query)[::2] == (200, b"1158201444")
    wrong = query.replace(VERIFY, "guess")
    assert call(app, "GET", "/whatsapp", query=wrong)[0] == 403


def test_failed_statuses_are_recorded_and_131050_is_an_opt_out(app, store):
    body = json.dumps(load_fixture("web/whatsapp_status_failed.json")).encode()
    assert post_whatsapp(app, body)[0] == 200
    assert store.optouts_for(["+4791234567"]) == {"whatsapp"}
    assert store.optouts_for(["+4741234568"]) == set()  # 131049 is a cap, not an opt-out
    failed = store.events("shopify-5521")
    assert ("whatsapp_failed", failed[0][1]) in failed
    assert failed[0][1].startswith("131050 ")
    assert store.events("shopify-5522")[0][1].startswith("131049 ")


def test_stop_replies_and_the_stop_promotions_button_opt_out(app, store):
    body = json.dumps(load_fixture("web/whatsapp_inbound.json")).encode()
    assert post_whatsapp(app, body)[0] == 200
    assert store.optouts_for(["+4791234567"]) == {"whatsapp"}
    assert store.optouts_for(["+4741234568"]) == {"whatsapp"}
    assert store.optouts_for(["+4741234569"]) == set()


def test_user_preferences_stop_and_resume(app, store):
    payload = load_fixture("web/whatsapp_user_preferences.json")
    post_whatsapp(app, json.dumps(payload).encode())
    assert store.optouts_for(["+4791234567"]) == {"whatsapp"}
    payload["entry"][0]["changes"][0]["value"]["user_preferences"][0]["value"] = "resume"
    post_whatsapp(app, json.dumps(payload).encode())
    assert store.optouts_for(["+4791234567"]) == set()


def test_an_invalid_whatsapp_signature_is_403_and_changes_nothing(app, store):
    body = json.dumps(load_fixture("web/whatsapp_inbound.json")).encode()
    other = "sha256=" + hmac.new(b"another secret", body, hashlib.sha256).hexdigest()
    for signature in (other, "sha256=", "sha1=abc"):
        assert post_whatsapp(app, body, signature)[0] == 403
    assert call(app, "POST", "/whatsapp", body)[0] == 403
    assert store.list_optouts() == []


def test_signed_garbage_is_400(app):
    assert post_whatsapp(app, b"{not json")[0] == 400


def test_one_malformed_item_does_not_stop_the_rest(app, store):
    payload = load_fixture("web/whatsapp_inbound.json")
    messages = payload["entry"][0]["changes"][0]["value"]["messages"]
    messages.insert(0, {"type": "text", "text": {"body": "STOP"}})  # no "from"
    messages.insert(1, {"type": "button", "from": "4791234567"})  # no "button"
    assert post_whatsapp(app, json.dumps(payload).encode())[0] == 200
    assert store.optouts_for(["+4791234567"]) == {"whatsapp"}
    assert store.optouts_for(["+4741234568"]) == {"whatsapp"}


# -- unsubscribe ----------------------------------------------------------------------------
def test_unsubscribe_links_round_trip_and_refuse_forgeries():
    links = UnsubscribeLinks(PUBLIC, UNSUB_SECRET)
    url = links("Kari@Example.no", "email")
    assert url.startswith(f"{PUBLIC}/unsubscribe/")
    token = url.rsplit("/", 1)[1]
    assert links.read(token) == ("kari@example.no", "email")
    assert UnsubscribeLinks(PUBLIC, "another-secret-0123456").read(token) is None
    forged = base64.urlsafe_b64encode(b"\x01" + b"email\nola@example.no" * 3).rstrip(b"=")
    assert links.read(forged.decode()) is None
    assert links.read("garbage") is None
    assert links.read("") is None


def test_get_shows_a_confirmation_page_and_changes_nothing(app, store):
    url = UnsubscribeLinks(PUBLIC, UNSUB_SECRET)("kari@example.no", "email")
    status, headers, page = call(app, "GET", url.removeprefix(PUBLIC))
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert b"<form method=post>" in page
    assert b"k***@example.no" in page
    assert b"kari@example.no" not in page
    assert store.list_optouts() == []


def test_one_click_post_unsubscribes(app, store):
    url = UnsubscribeLinks(PUBLIC, UNSUB_SECRET)("kari@example.no", "email")
    path = url.removeprefix(PUBLIC)
    status, _, page = call(app, "POST", path, b"List-Unsubscribe=One-Click")
    assert status == 200
    assert b"You are unsubscribed" in page
    assert store.optouts_for(["kari@example.no"]) == {"email"}
    assert store.list_optouts()[0].source == "unsubscribe link"
    assert b"You are unsubscribed" in call(app, "GET", path)[2]


def test_a_forged_unsubscribe_is_403_and_changes_nothing(app, store):
    url = UnsubscribeLinks(PUBLIC, "another-secret-0123456")("kari@example.no", "email")
    status, _, _ = call(app, "POST", url.removeprefix(PUBLIC), b"List-Unsubscribe=One-Click")
    assert status == 403
    assert store.list_optouts() == []


def test_unsubscribe_links_need_a_long_secret():
    with pytest.raises(ConfigError) as info:
        UnsubscribeLinks(PUBLIC, "short")
    assert info.value.key == "web.unsubscribe_secret"


# -- mounting and serving -------------------------------------------------------------------
def test_another_app_is_mounted_under_its_prefix(store):
    seen = {}

    def redirects(environ, start_response):
        seen["script"], seen["path"] = environ["SCRIPT_NAME"], environ["PATH_INFO"]
        start_response("302 Found", [("Location", "https://shop.example/cart")])
        return [b""]

    app = make_app(store, public_url=PUBLIC, mounts={"/r": redirects})
    assert call(app, "GET", "/r/Ab3")[0] == 302
    assert seen == {"script": "/r", "path": "/Ab3"}
    assert call(app, "GET", "/rx")[0] == 404


def test_serve_answers_on_a_real_socket(store):
    links = UnsubscribeLinks(PUBLIC, UNSUB_SECRET)
    app = make_app(store, public_url=PUBLIC, unsubscribe_secret=UNSUB_SECRET)
    with serving(app) as base:
        path = links("kari@example.no", "email").removeprefix(PUBLIC)
        response = requests.post(f"{base}{path}", data={"List-Unsubscribe": "One-Click"}, timeout=5)
        assert response.status_code == 200
        assert requests.get(f"{base}/healthz", timeout=5).text == "ok\n"
    assert store.optouts_for(["kari@example.no"]) == {"email"}


# -- configuration --------------------------------------------------------------------------
WEB_CONFIG = f"""
[connector]
type = "cartrescue.demo:DemoConnector"
[channels.email]
type = "cartrescue_testing:MemoryChannel"
[web]
public_url = "{PUBLIC}"
unsubscribe_secret_env = "CR_UNSUB"
twilio_auth_token_env = "CR_TWILIO"
port = 9090
"""


def test_config_wires_unsubscribe_links_into_the_recovery():
    config = load_config(None, text=WEB_CONFIG, env={"CR_UNSUB": UNSUB_SECRET, "CR_TWILIO": "t"})
    with SQLiteStore(":memory:") as store:
        recovery = config.recovery(store=store)
    url = recovery.unsubscribe("kari@example.no", "email")
    assert url.startswith(f"{PUBLIC}/unsubscribe/")
    token = url.removeprefix(f"{PUBLIC}/unsubscribe/")
    assert UnsubscribeLinks(PUBLIC, UNSUB_SECRET).read(token) == ("kari@example.no", "email")


def test_without_a_web_table_there_are_no_unsubscribe_links():
    config = load_config(
        None,
        text='[connector]\ntype = "cartrescue.demo:DemoConnector"\n'
        '[channels.sms]\ntype = "cartrescue_testing:MemoryChannel"\n',
    )
    with SQLiteStore(":memory:") as store:
        assert config.recovery(store=store).unsubscribe is None


def test_web_settings_read_the_table():
    env = {"CR_UNSUB": UNSUB_SECRET, "CR_TWILIO": "t"}
    settings = web_settings(load_config(None, text=WEB_CONFIG, env=env).data, env)
    assert settings.public_url == PUBLIC
    assert settings.port == 9090
    assert settings.twilio_auth_token == "t"
    assert settings.whatsapp_app_secret is None
    assert web_settings({}, {}) is None


@pytest.mark.parametrize(
    ("table", "env", "key"),
    [
        ({"unsubscribe_secret_env": "X"}, {"X": UNSUB_SECRET}, "web.public_url"),
        ({"public_url": PUBLIC, "unsubscribe_secret": "inline"}, {}, "web.unsubscribe_secret"),
        (
            {"public_url": PUBLIC, "twilio_auth_token_env": "MISSING"},
            {},
            "web.twilio_auth_token_env",
        ),
        (
            {"public_url": PUBLIC, "unsubscribe_secret_env": "X"},
            {"X": "short"},
            "web.unsubscribe_secret",
        ),
        ({"public_url": PUBLIC, "port": "80"}, {}, "web.port"),
    ],
)
def test_web_settings_name_the_wrong_key(table, env, key):
    with pytest.raises(ConfigError) as info:
        web_settings({"web": table}, env)
    assert info.value.key == key


def test_serve_without_a_web_table_is_a_configuration_error(tmp_path, capsys):
    from cartrescue.cli import EXIT_CONFIG, main

    path = tmp_path / "cartrescue.toml"
    path.write_text('[connector]\ntype = "cartrescue.demo:DemoConnector"\n')
    assert main(["serve", "--config", str(path)]) == EXIT_CONFIG
    assert "[web]" in capsys.readouterr().err


def test_a_failed_whatsapp_status_marks_the_outbox_entry_failed(app, store):
    for key in ("shopify-5521:1:whatsapp", "shopify-5522:2:whatsapp"):
        checkout_id, step, _ = key.split(":")
        assert store.claim(
            key,
            checkout_id=checkout_id,
            step=int(step),
            channel="whatsapp",
            recipient="+4791234567",
            contacts=["+4791234567"],
            at=NOW,
            cap_since=None,
            run_id=None,
        )
        store.finish(key, "sent", NOW)
    body = json.dumps(load_fixture("web/whatsapp_status_failed.json")).encode()
    assert post_whatsapp(app, body)[0] == 200
    (entry,) = store.outbox_for("shopify-5521")
    assert entry.status == "failed"
    assert entry.error.startswith("WhatsApp 131050")
    assert store.outbox_for("shopify-5522")[0].status == "failed"
    assert store.skipped_steps("shopify-5522") == {2}  # 131049: the per-user cap skips the step
    assert store.skipped_steps("shopify-5521") == set()


# -- retried deliveries ---------------------------------------------------------------------
def send_sms_with_sid(app, body_text, sid):
    body = urlencode({"Body": body_text, "From": "+4791234567", "MessageSid": sid}).encode()
    signature = hand_signed_twilio(f"{PUBLIC}/twilio/sms", body).decode()
    return call(app, "POST", "/twilio/sms", body, {"X-Twilio-Signature": signature})


def test_a_retried_twilio_stop_does_not_undo_a_later_start(app, store):
    assert send_sms_with_sid(app, "STOP", "SM1")[0] == 200
    assert send_sms_with_sid(app, "START", "SM2")[0] == 200
    assert send_sms_with_sid(app, "STOP", "SM1")[0] == 200  # Twilio's retry of the first
    assert store.optouts_for(["+4791234567"]) == set()
    assert [kind for kind, _ in store.events()].count("opt_out") == 1


def whatsapp_text(text, message_id):
    message = {"from": "4791234567", "id": message_id, "type": "text", "text": {"body": text}}
    value = {"messaging_product": "whatsapp", "messages": [message]}
    payload = {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": value}]}]}
    return json.dumps(payload).encode()


def test_a_retried_whatsapp_stop_does_not_undo_a_later_start(app, store):
    assert post_whatsapp(app, whatsapp_text("Stop", "wamid.1"))[0] == 200
    assert post_whatsapp(app, whatsapp_text("Start", "wamid.2"))[0] == 200
    assert post_whatsapp(app, whatsapp_text("Stop", "wamid.1"))[0] == 200
    assert store.optouts_for(["+4791234567"]) == set()


def test_delivery_ids_are_forgotten_after_a_week(store):
    assert store.record_delivery("twilio", "SM1", NOW) is True
    assert store.record_delivery("twilio", "SM1", NOW + timedelta(days=1)) is False
    assert store.record_delivery("whatsapp", "SM1", NOW) is True  # another source
    store.record_delivery("twilio", "SM9", NOW + timedelta(days=8))  # prunes
    assert store.record_delivery("twilio", "SM1", NOW + timedelta(days=8)) is True


# -- behind a reverse proxy -----------------------------------------------------------------
@pytest.mark.parametrize("path", ["/twilio/sms", "/cartrescue/twilio/sms"])
def test_routes_answer_whether_the_proxy_strips_the_prefix_or_not(app, store, path):
    body = load_fixture("twilio/inbound_stop.form")
    # Twilio signs the public URL, whatever path reaches the app.
    signature = hand_signed_twilio("https://shop.example/cartrescue/twilio/sms", body).decode()
    status, _, _ = call(app, "POST", path, body, {"X-Twilio-Signature": signature})
    assert status == 200
    assert store.optouts_for(["+4791234567"]) == {"sms"}
    assert call(app, "GET", path.replace("twilio/sms", "healthz"))[::2] == (200, b"ok\n")


def test_mounts_answer_under_the_public_path_too(store):
    seen = {}

    def redirects(environ, start_response):
        seen["script"], seen["path"] = environ["SCRIPT_NAME"], environ["PATH_INFO"]
        start_response("302 Found", [("Location", "https://shop.example/cart")])
        return [b""]

    app = make_app(store, public_url=PUBLIC, mounts={"/r": redirects})
    assert call(app, "GET", "/cartrescue/r/Ab3")[0] == 302
    assert seen == {"script": "/cartrescue/r", "path": "/Ab3"}
