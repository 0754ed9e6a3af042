import base64
import logging
from urllib.parse import parse_qs

import pytest
import requests
import responses

from cartrescue.config import load_config
from cartrescue.errors import (
    ConfigError,
    PermanentSendError,
    SendOutcomeUnknown,
    TransientSendError,
)
from tests.channels.conftest import make_message
from tests.conftest import load_fixture

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "tw-auth-token-0123456789abcdef"
URL = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"


@pytest.fixture
def twilio(waits):
    from cartrescue.channels.twilio import TwilioSMS

    return TwilioSMS(
        account_sid=SID,
        auth_token=TOKEN,
        from_number="+4759440000",
        status_callback="https://shop.example/twilio/status",
        sleep=waits.append,
        rate_limit=0,
    )


def form(call):
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


@responses.activate
def test_sends_the_documented_request_and_reads_the_sid(twilio):
    responses.post(URL, json=load_fixture("twilio/message_created.json"), status=201)
    receipt = twilio.send(make_message(to="+4791234567"))
    assert receipt.provider == "twilio"
    assert receipt.provider_id == "SM1f0e8ae6ade43cb3c0ce4525424e404f"
    assert receipt.detail == "queued"
    (call,) = responses.calls
    assert call.request.url == URL
    expected_auth = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert call.request.headers["Authorization"] == f"Basic {expected_auth}"
    assert call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form(call) == {
        "To": "+4791234567",
        "From": "+4759440000",
        "Body": "Your cart at Nordlys Design is waiting: https://nordlys.example/r/Ab3",
        "StatusCallback": "https://shop.example/twilio/status",
    }


@responses.activate
def test_messaging_service_sid_replaces_from(waits):
    from cartrescue.channels.twilio import TwilioSMS

    channel = TwilioSMS(
        account_sid=SID,
        auth_token=TOKEN,
        messaging_service_sid="MG" + "a" * 32,
        sleep=waits.append,
    )
    responses.post(URL, json=load_fixture("twilio/message_created.json"), status=201)
    channel.send(make_message())
    sent = form(responses.calls[0])
    assert sent["MessagingServiceSid"] == "MG" + "a" * 32
    assert "From" not in sent
    assert "StatusCallback" not in sent


@pytest.mark.parametrize(
    ("fixture", "opted_out"),
    [("error_21211.json", False), ("error_21614.json", False), ("error_21610.json", True)],
)
@responses.activate
def test_recipient_errors_are_permanent_and_21610_is_an_opt_out(twilio, fixture, opted_out):
    responses.post(URL, json=load_fixture(f"twilio/{fixture}"), status=400)
    with pytest.raises(PermanentSendError) as info:
        twilio.send(make_message(to="+4790000001"))
    error = info.value
    assert error.opted_out is opted_out
    assert error.provider == "twilio"
    assert error.status == 400
    assert error.code == load_fixture(f"twilio/{fixture}")["code"]
    assert str(error.code) in str(error)
    assert "+4790000001" not in str(error) + (error.snippet or "")
    assert len(responses.calls) == 1


@responses.activate
def test_429_is_retried_honouring_retry_after_then_succeeds(twilio, waits):
    responses.post(
        URL, json=load_fixture("twilio/error_20429.json"), status=429, headers={"Retry-After": "2"}
    )
    responses.post(URL, json=load_fixture("twilio/message_created.json"), status=201)
    receipt = twilio.send(make_message())
    assert receipt.provider_id == "SM1f0e8ae6ade43cb3c0ce4525424e404f"
    assert len(responses.calls) == 2
    assert waits == [2.0]


@responses.activate
def test_429_every_time_ends_as_transient_after_the_attempts(twilio, waits):
    for _ in range(4):
        responses.post(URL, json=load_fixture("twilio/error_20429.json"), status=429)
    with pytest.raises(TransientSendError) as info:
        twilio.send(make_message())
    assert not isinstance(info.value, SendOutcomeUnknown)
    assert len(responses.calls) == 4
    assert len(waits) == 3


@responses.activate
def test_5xx_is_unknown_and_not_resent(twilio):
    responses.post(URL, json=load_fixture("twilio/error_20500.json"), status=500)
    with pytest.raises(SendOutcomeUnknown):
        twilio.send(make_message())
    assert len(responses.calls) == 1


@responses.activate
def test_refused_credentials_are_transient_and_hide_the_token(twilio, caplog):
    caplog.set_level(logging.DEBUG)
    responses.post(URL, json=load_fixture("twilio/error_20003.json"), status=401)
    with pytest.raises(TransientSendError) as info:
        twilio.send(make_message())
    assert "auth_token" in str(info.value)
    assert TOKEN not in str(info.value)
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
    assert len(responses.calls) == 1


def test_a_number_that_is_not_e164_is_refused_without_a_request(twilio):
    with responses.RequestsMock() as mock:
        with pytest.raises(PermanentSendError, match=r"E\.164"):
            twilio.send(make_message(to="91234567"))
        assert len(mock.calls) == 0


@pytest.mark.parametrize(
    ("options", "key"),
    [
        (
            {"account_sid": "SK123", "auth_token": TOKEN, "from_number": "+4759440000"},
            "account_sid",
        ),
        ({"account_sid": SID, "auth_token": TOKEN}, "from_number"),
        ({"account_sid": SID, "auth_token": "", "from_number": "+1"}, "auth_token"),
        (
            {"account_sid": SID, "auth_token": TOKEN, "from_number": "+1", "rate_limit": "fast"},
            "rate_limit",
        ),
        (
            {
                "account_sid": SID,
                "auth_token": TOKEN,
                "from_number": "+1",
                "status_callback": "http://x",
            },
            "status_callback",
        ),
    ],
)
def test_bad_settings_name_the_key(options, key):
    from cartrescue.channels.twilio import TwilioSMS

    with pytest.raises(ConfigError) as info:
        TwilioSMS(**options)
    assert info.value.key == key


def test_built_from_config_with_the_token_from_the_environment():
    config = load_config(
        None,
        text=f"""
[connector]
type = "cartrescue.demo:DemoConnector"
[channels.sms]
type = "twilio"
account_sid = "{SID}"
auth_token_env = "TWILIO_AUTH_TOKEN"
from_number = "+4759440000"
rate_limit = 5
concurrency = 8
timeout = [3, 20]
""",
        env={"TWILIO_AUTH_TOKEN": TOKEN},
    )
    channel = config.channels()["sms"]
    assert type(channel).__name__ == "TwilioSMS"
    assert channel.rate_limit == 5
    assert channel.concurrency == 8
    assert channel.timeout == (3.0, 20.0)


def test_config_names_a_misspelt_key():
    with pytest.raises(ConfigError) as info:
        load_config(
            None,
            text=f"""
[channels.sms]
type = "twilio"
account_sid = "{SID}"
auth_token_env = "T"
from_numbr = "+4759440000"
""",
            env={"T": TOKEN},
        )
    assert info.value.key == "channels.sms.from_numbr"
    assert "did you mean from_number?" in str(info.value)


@responses.activate
def test_doctor_check_reads_the_account_and_reports_refused_credentials(twilio):
    from cartrescue.doctor import SelfCheck

    account = f"https://api.twilio.com/2010-04-01/Accounts/{SID}.json"
    responses.get(account, json={"sid": SID, "status": "active"})
    responses.get(account, json=load_fixture("twilio/error_20003.json"), status=401)
    assert isinstance(twilio, SelfCheck)
    assert twilio.check() == []
    (problem,) = twilio.check()
    assert problem.area == "channels.sms"
    assert "refused the credentials" in problem.message
    assert problem.fix == "check account_sid and auth_token"
    assert all(call.request.method == "GET" for call in responses.calls)


@responses.activate
def test_doctor_check_reports_an_unreachable_provider(twilio):
    account = f"https://api.twilio.com/2010-04-01/Accounts/{SID}.json"
    responses.get(account, body=requests.ConnectionError("no route"))
    (problem,) = twilio.check()
    assert "cannot reach https://api.twilio.com" in problem.message
