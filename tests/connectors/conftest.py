import pytest


@pytest.fixture(autouse=True)
def _no_contact_or_secret_in_logs(scanned_logs):
    """Every connector test fails if cartrescue logs a watched contact or secret."""
    return scanned_logs
