import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from cartrescue.channels.email import SMTPEmail
from cartrescue.errors import (
    ConfigError,
    PermanentSendError,
    SendOutcomeUnknown,
    TransientSendError,
)
from tests.channels.conftest import Mailbox, free_port, make_message
from tests.conftest import FIXTURES

CERT = FIXTURES / "smtp" / "cert.pem"
KEY = FIXTURES / "smtp" / "key.pem"
UNSUBSCRIBE = "https://shop.example/cartrescue/unsubscribe/ZW1haWwKa2FyaUBleGFtcGxlLm5v.Q2x2"


def tls_context():
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(CERT, KEY)
    return context


def client_context():
    return ssl.create_default_context(cafile=str(CERT))


@pytest.fixture
def mailbox():
    return Mailbox()


@pytest.fixture
def server(mailbox):
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture
def smtp(server):
    channel = SMTPEmail(
        host="127.0.0.1",
        port=server.port,
        security="none",
        sender="Nordlys Design <hei@nordlys.example>",
        reply_to="kundeservice@nordlys.example",
    )
    yield channel
    channel.close()


def test_sends_text_and_html_with_one_click_unsubscribe_headers(smtp, mailbox):
    message = make_message(
        "email", "kari@example.no", key="ch_1001:2:email", unsubscribe_url=UNSUBSCRIBE
    )
    receipt = smtp.send(message)
    ((mail_from, rcpt_tos, _),) = mailbox.received
    assert mail_from == "hei@nordlys.example"
    assert rcpt_tos == ["kari@example.no"]
    (mail,) = mailbox.messages()
    assert mail["To"] == "kari@example.no"
    assert mail["From"] == "Nordlys Design <hei@nordlys.example>"
    assert mail["Reply-To"] == "kundeservice@nordlys.example"
    assert mail["Subject"] == "You left something behind"
    assert mail.get_content_type() == "multipart/alternative"
    assert mail.get_body(("plain",)).get_content().strip().endswith("/r/Ab3")
    assert mail.get_body(("html",)).get_content().strip() == "<p>Your cart is waiting</p>"
    assert mail["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["Message-ID"] == receipt.provider_id
    assert mail["Message-ID"].endswith("@nordlys.example>")
    assert mail["Date"]


def test_a_long_unsubscribe_url_stays_one_unencoded_token(smtp, mailbox):
    url = "https://shop.example/cartrescue/unsubscribe/" + "A" * 120 + ".sig"
    smtp.send(make_message("email", "kari@example.no", unsubscribe_url=url))
    ((_, _, raw),) = mailbox.received
    assert f"List-Unsubscribe: <{url}>\r\n".encode() in raw


def test_message_id_is_stable_for_a_key(smtp):
    assert smtp.message_id("ch_1:1:email") == smtp.message_id("ch_1:1:email")
    assert smtp.message_id("ch_1:1:email") != smtp.message_id("ch_1:2:email")


def test_text_only_without_unsubscribe_url(smtp, mailbox):
    smtp.send(make_message("email", "kari@example.no", html=None))
    (mail,) = mailbox.messages()
    assert mail.get_content_type() == "text/plain"
    assert mail["List-Unsubscribe"] is None
    assert mail["List-Unsubscribe-Post"] is None


def test_a_plain_http_unsubscribe_url_gets_no_one_click_header(smtp, mailbox):
    smtp.send(make_message("email", "kari@example.no", unsubscribe_url="http://localhost/u/1"))
    (mail,) = mailbox.messages()
    assert mail["List-Unsubscribe"] == "<http://localhost/u/1>"
    assert mail["List-Unsubscribe-Post"] is None


def test_one_connection_is_reused_for_a_pass_and_reopened_after_close(smtp, mailbox):
    for i in range(3):
        smtp.send(make_message("email", f"buyer{i}@example.no", key=f"ch_{i}:1:email"))
    assert mailbox.connections == 1
    smtp.close()
    smtp.send(make_message("email", "late@example.no", key="ch_9:1:email"))
    assert mailbox.connections == 2
    assert len(mailbox.received) == 4


def test_a_refused_recipient_is_permanent_and_the_next_one_goes_out(smtp, mailbox):
    mailbox.refuse.add("nobody@example.no")
    with pytest.raises(PermanentSendError) as info:
        smtp.send(make_message("email", "nobody@example.no"))
    assert info.value.code == 550
    assert "nobody@example.no" not in str(info.value)
    smtp.send(make_message("email", "kari@example.no"))
    assert [rcpt for _, rcpt, _ in mailbox.received] == [["kari@example.no"]]


def test_a_temporary_data_refusal_is_transient(smtp, mailbox):
    mailbox.reject_data = "451 4.7.1 Try again later"
    with pytest.raises(TransientSendError) as info:
        smtp.send(make_message("email", "kari@example.no"))
    assert not isinstance(info.value, SendOutcomeUnknown)
    assert info.value.code == 451


def test_a_permanent_data_refusal_is_permanent(smtp, mailbox):
    mailbox.reject_data = "554 5.7.1 Message rejected as spam"
    with pytest.raises(PermanentSendError):
        smtp.send(make_message("email", "kari@example.no"))


def test_a_connection_dropped_during_data_is_transient(smtp, mailbox):
    mailbox.drop_data = True
    with pytest.raises(TransientSendError) as info:
        smtp.send(make_message("email", "kari@example.no"))
    assert not isinstance(info.value, SendOutcomeUnknown)
    mailbox.drop_data = False
    smtp.send(make_message("email", "kari@example.no"))
    assert len(mailbox.received) == 1


def test_no_server_is_transient():
    channel = SMTPEmail(
        host="127.0.0.1", port=free_port(), security="none", sender="hei@nordlys.example"
    )
    with pytest.raises(TransientSendError, match="could not connect"):
        channel.send(make_message("email", "kari@example.no"))


def test_a_missing_subject_or_a_header_injection_is_refused(smtp, mailbox):
    with pytest.raises(PermanentSendError, match="subject"):
        smtp.send(make_message("email", "kari@example.no", subject=None))
    with pytest.raises(PermanentSendError, match="cannot build"):
        smtp.send(make_message("email", "kari@example.no\r\nBcc: all@example.no"))
    # a subject is folded to one line (and limited), so a line break in it injects nothing
    smtp.send(make_message("email", "kari@example.no", subject="Hi\r\nBcc: all@example.no"))
    (mail,) = mailbox.messages()
    assert mail["Bcc"] is None
    assert mail["Subject"] == "Hi Bcc: all@example.no"


def test_starttls_and_login(mailbox):
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password))
        ok = auth_data.password == b"smtp-pass-0123"
        return AuthResult(success=ok, handled=False)  # unhandled: aiosmtpd answers 535

    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=tls_context(),
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    try:
        good = SMTPEmail(
            host="127.0.0.1",
            port=controller.port,
            sender="hei@nordlys.example",
            username="hei@nordlys.example",
            password="smtp-pass-0123",
            ssl_context=client_context(),
        )
        good.send(make_message("email", "kari@example.no"))
        good.close()
        assert logins[0] == (b"hei@nordlys.example", b"smtp-pass-0123")
        assert len(mailbox.received) == 1

        assert good.check() == []
        bad = SMTPEmail(
            host="127.0.0.1",
            port=controller.port,
            sender="hei@nordlys.example",
            username="hei@nordlys.example",
            password="wrong-pass-0123",
            ssl_context=client_context(),
            timeout=5,
        )
        with pytest.raises(TransientSendError) as info:
            bad.send(make_message("email", "kari@example.no"))
        assert "wrong-pass-0123" not in str(info.value)
        assert "check username and password" in str(info.value)
        (problem,) = bad.check()
        assert problem.area == "channels.email"
        assert "refused the login" in problem.message
        assert "wrong-pass-0123" not in problem.message
    finally:
        controller.stop()


def test_implicit_tls(mailbox):
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=free_port(), ssl_context=tls_context()
    )
    controller.start()
    try:
        channel = SMTPEmail(
            host="127.0.0.1",
            port=controller.port,
            security="ssl",
            sender="hei@nordlys.example",
            ssl_context=client_context(),
        )
        channel.send(make_message("email", "kari@example.no"))
        channel.close()
    finally:
        controller.stop()
    assert len(mailbox.received) == 1


def test_starttls_refused_by_a_server_without_it(server):
    channel = SMTPEmail(host="127.0.0.1", port=server.port, sender="hei@nordlys.example")
    with pytest.raises(TransientSendError, match="STARTTLS"):
        channel.send(make_message("email", "kari@example.no"))


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"sender": "not an address"}, "sender"),
        ({"security": "tls"}, "security"),
        ({"port": 0}, "port"),
        ({"username": "u"}, "username"),
        (
            {"host": "smtp.example.com", "security": "none", "username": "u", "password": "p"},
            "security",
        ),
    ],
)
def test_bad_settings_name_the_key(options, key):
    settings = {"host": "127.0.0.1", "sender": "hei@nordlys.example", **options}
    with pytest.raises(ConfigError) as info:
        SMTPEmail(**settings)
    assert info.value.key == key
