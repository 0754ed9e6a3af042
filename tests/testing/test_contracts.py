"""The conformance kit: the demo connector and the example plugin packages pass it, found
through their entry points, and it fails implementations that break the engine's rules."""

from pathlib import Path

import pytest

from cartrescue.config import load_config
from cartrescue.demo import DemoConnector
from cartrescue.registry import CHANNELS, CONNECTORS, discover, load_plugin
from cartrescue_testing.contracts import ConnectorContract

EXAMPLES = Path(__file__).parents[2] / "examples"
CARTS = EXAMPLES / "connector-csvshop" / "tests" / "data"


class TestDemoConnector(ConnectorContract):
    @pytest.fixture
    def connector(self):
        return DemoConnector()

    @pytest.fixture
    def connector_with_bad_item(self):
        return DemoConnector()  # the demo shop holds one checkout with an unreadable price


class TestExampleConnectorFromItsEntryPoint(ConnectorContract):
    """The example connector package, as cartrescue.toml reaches it: by entry-point name."""

    @pytest.fixture
    def connector(self):
        config = load_config(
            None, text=f'[connector]\ntype = "csvshop"\npath = "{CARTS}/carts.csv"\n'
        )
        return config.connector()

    @pytest.fixture
    def connector_with_bad_item(self):
        text = f'[connector]\ntype = "csvshop"\npath = "{CARTS}/carts_with_bad_row.csv"\n'
        return load_config(None, text=text).connector()


def test_the_example_packages_are_installed_and_found_through_entry_points():
    """Install them with: pip install -e examples/connector-csvshop -e examples/channel-textbelt
    (the README's test command and .ci/run do)."""
    connector = load_plugin(CONNECTORS, "csvshop")
    channel = load_plugin(CHANNELS, "textbelt")
    assert connector.__module__ == "cartrescue_csvshop"
    assert channel.__module__ == "cartrescue_textbelt"
    plugins = {p.name: p for p in discover(CHANNELS) + discover(CONNECTORS)}
    assert plugins["csvshop"].package == "cartrescue-csvshop"
    assert plugins["textbelt"].package == "cartrescue-textbelt"


def test_the_example_channel_is_built_from_config():
    config = load_config(
        None,
        text='[channels.sms]\ntype = "textbelt"\nkey_env = "TEXTBELT_KEY"\nconcurrency = 2\n',
        env={"TEXTBELT_KEY": "textbelt-key-0123456789"},
    )
    channel = config.channels()["sms"]
    assert type(channel) is load_plugin(CHANNELS, "textbelt")
    assert channel.concurrency == 2
    assert channel.rate_limit == 1.0


CHANNEL_HEADER = """
import logging
import pytest
from cartrescue.errors import PermanentSendError, SendOutcomeUnknown, TransientSendError
from cartrescue.models import Receipt
from cartrescue_testing.contracts import ChannelContract, Delivery


class Fake:
    def __init__(self):
        self.refused, self.delivered, self.throttle = set(), [], 0

    def deliveries(self):
        return list(self.delivered)

    def reject(self, to):
        self.refused.add(to)

    def throttle_next(self):
        self.throttle += 1


class Base:
    kind = "sms"

    def __init__(self, fake):
        self.fake = fake

    def check(self, message):
        if message.to in self.fake.refused:
            raise PermanentSendError("test: refused +47******67")
        if self.fake.throttle:
            self.fake.throttle -= 1
            raise TransientSendError("test: slow down")

    def deliver(self, message):
        self.fake.delivered.append(Delivery(message.to, message.text))
        return Receipt(provider="test")

    def close(self):
        pass


class TestIt(ChannelContract):
    @pytest.fixture
    def fake(self):
        return Fake()

    @pytest.fixture
    def channel(self, fake):
        return Broken(fake)
"""


def run_kit(pytester, source):
    pytester.makepyfile(test_kit=source)
    return pytester.runpytest("-q", "-p", "no:cacheprovider")


def failed_tests(result):
    return sorted(
        line.split("::")[-1].split(" ")[0] for line in result.outlines if line.startswith("FAILED")
    )


def test_a_well_behaved_channel_passes(pytester):
    result = run_kit(
        pytester,
        CHANNEL_HEADER
        + """
class Broken(Base):
    def send(self, message):
        self.check(message)
        return self.deliver(message)
""",
    )
    result.assert_outcomes(passed=7, skipped=1)


@pytest.mark.parametrize(
    ("body", "failing"),
    [
        (  # swallows the provider's refusal and reports success
            """
    def send(self, message):
        if message.to in self.fake.refused:
            return Receipt(provider="test")
        self.check(message)
        return self.deliver(message)
""",
            ["test_refused_recipient_is_permanent_and_masked"],
        ),
        (  # shows the full number in its error
            """
    def send(self, message):
        if message.to in self.fake.refused:
            raise PermanentSendError(f"test: {message.to} refused")
        self.check(message)
        return self.deliver(message)
""",
            ["test_refused_recipient_is_permanent_and_masked"],
        ),
        (  # logs the full number
            """
    def send(self, message):
        logging.getLogger("cartrescue.broken").info("sending to %s", message.to)
        self.check(message)
        return self.deliver(message)
""",
            ["test_refused_recipient_is_permanent_and_masked"],
        ),
        (  # calls "too many requests" an unknown outcome
            """
    def send(self, message):
        if self.fake.throttle:
            self.fake.throttle -= 1
            raise SendOutcomeUnknown("test: 429")
        self.check(message)
        return self.deliver(message)
""",
            ["test_too_many_requests_is_retried_or_transient"],
        ),
        (  # sends twice
            """
    def send(self, message):
        self.check(message)
        self.deliver(message)
        return self.deliver(message)
""",
            [
                "test_messages_are_delivered_independently_in_order",
                "test_refused_recipient_is_permanent_and_masked",
                "test_send_delivers_once_and_returns_a_receipt",
                "test_sends_again_after_close",
                "test_unencodable_text_is_never_an_unknown_outcome",
            ],
        ),
        (  # lets the encoder's error escape, outside the Channel contract
            """
    def send(self, message):
        self.check(message)
        message.text.encode("utf-8")
        return self.deliver(message)
""",
            ["test_unencodable_text_is_never_an_unknown_outcome"],
        ),
        (  # calls text it could not encode an unknown outcome
            """
    def send(self, message):
        self.check(message)
        try:
            message.text.encode("utf-8")
        except UnicodeError as err:
            raise SendOutcomeUnknown("test: may have been sent") from err
        return self.deliver(message)
""",
            ["test_unencodable_text_is_never_an_unknown_outcome"],
        ),
    ],
)
def test_the_kit_fails_a_channel_that_breaks_a_rule(pytester, body, failing):
    result = run_kit(pytester, CHANNEL_HEADER + "\nclass Broken(Base):" + body)
    assert failed_tests(result) == failing


CONNECTOR_HEADER = """
from datetime import UTC, datetime
from decimal import Decimal
import pytest
from cartrescue.models import BadCheckout, Checkout
from cartrescue_testing.contracts import ConnectorContract

T = datetime(2025, 6, 17, 8, 0, tzinfo=UTC)


def checkout(id, **kw):
    values = dict(id=id, abandoned_at=T, updated_at=T, recovery_url="https://s.example/c/" + id,
                  currency="NOK", total=Decimal("10"))
    values.update(kw)
    return Checkout(**values)


class TestIt(ConnectorContract):
    @pytest.fixture
    def connector(self):
        return Broken()

    @pytest.fixture
    def connector_with_bad_item(self):
        return Broken(bad=True)
"""


@pytest.mark.parametrize(
    ("body", "failing"),
    [
        (  # builds a list instead of yielding page by page
            """
class Broken:
    name = "broken"
    def __init__(self, bad=False):
        self.bad = bad
    def abandoned_checkouts(self, since):
        found = [checkout("1")] if since is None or since <= T else []
        return found + ([BadCheckout("2", "bad")] if self.bad else [])
""",
            ["test_abandoned_checkouts_is_lazy"],
        ),
        (  # one bad item ends the pass
            """
class Broken:
    name = "broken"
    def __init__(self, bad=False):
        self.bad = bad
    def abandoned_checkouts(self, since):
        if self.bad:
            raise ValueError("cannot map item 2")
        if since is None or since <= T:
            yield checkout("1")
""",
            ["test_bad_item_is_reported_and_the_rest_goes_on"],
        ),
        (  # ignores since, and repeats an id
            """
class Broken:
    name = "broken"
    def __init__(self, bad=False):
        self.bad = bad
    def abandoned_checkouts(self, since):
        yield checkout("1")
        yield checkout("1", total=Decimal("12"))
        if self.bad:
            yield BadCheckout("2", "bad")
""",
            ["test_checkouts_are_well_formed", "test_since_in_the_future_yields_no_checkouts"],
        ),
        (  # says it reads ahead, but its rows come from a handle bound to the thread that made it
            """
import sqlite3

class Broken:
    name = "broken"
    read_ahead = True
    def __init__(self, bad=False):
        self.bad = bad
        self.db = sqlite3.connect(":memory:")
    def abandoned_checkouts(self, since):
        for (id,) in self.db.execute("SELECT '1'"):
            if since is None or since <= T:
                yield checkout(id)
        if self.bad:
            yield BadCheckout("2", "bad")
""",
            ["test_read_ahead_reads_the_same_from_another_thread"],
        ),
    ],
)
def test_the_kit_fails_a_connector_that_breaks_a_rule(pytester, body, failing):
    result = run_kit(pytester, CONNECTOR_HEADER + body)
    assert failed_tests(result) == failing
