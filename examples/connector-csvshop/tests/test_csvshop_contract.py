"""An integrator's test: cartrescue's conformance kit against the CSV connector."""

from pathlib import Path

import pytest
from cartrescue_csvshop import CsvShopConnector

from cartrescue_testing.contracts import ConnectorContract

DATA = Path(__file__).parent / "data"


class TestCsvShopConnector(ConnectorContract):
    @pytest.fixture
    def connector(self):
        return CsvShopConnector(str(DATA / "carts.csv"))

    @pytest.fixture
    def connector_with_bad_item(self):
        return CsvShopConnector(str(DATA / "carts_with_bad_row.csv"))


def test_rows_are_mapped():
    checkouts = list(CsvShopConnector(str(DATA / "carts.csv")).abandoned_checkouts(None))
    first = checkouts[0]
    assert first.customer.email == "Kari.Nordmann@example.no"
    assert first.customer.phone == "+4791234567"
    assert first.line_items[0].title == "Ullpledd"
    assert checkouts[2].completed_at is not None
