import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(name: str):
    """A real-shaped payload from tests/fixtures, decoded when it is JSON."""
    path = FIXTURES / name
    return json.loads(path.read_text()) if path.suffix == ".json" else path.read_bytes()


@pytest.fixture
def waits():
    """A stand-in for time.sleep that records the waits instead of sleeping."""
    return []
