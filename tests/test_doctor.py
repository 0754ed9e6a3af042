"""``cartrescue doctor``: builds what ``run`` builds, lists what it checked, writes nothing."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cartrescue.cli import EXIT_CONFIG, EXIT_OK, main
from cartrescue.store import SQLiteStore

BASE = (
    '[shop]\nname = "Nordlys"\n[connector]\ntype = "cartrescue.demo:DemoConnector"\n'
    '[channels.sms]\ntype = "console"\n[channels.email]\ntype = "console"\n'
    '[links]\nbase_url = "https://go.shop.example/r/"\n'
    '[store]\npath = "data/store.sqlite3"\n'
)
WEB = '[web]\npublic_url = "https://shop.example"\nunsubscribe_secret_env = "UNSUB_SECRET"\n'


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(args), out=out)
    return code, out.getvalue()


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "cartrescue.toml"
    path.write_text(BASE + WEB)
    return path


@pytest.mark.parametrize(
    "secret", [None, "short"], ids=["web secret unset", "web secret too short"]
)
def test_doctor_fails_where_run_fails(config, monkeypatch, capsys, secret):
    if secret is None:
        monkeypatch.delenv("UNSUB_SECRET", raising=False)
    else:
        monkeypatch.setenv("UNSUB_SECRET", secret)
    run_code, _ = run("run", "--config", str(config))
    assert run_code == EXIT_CONFIG
    assert "web.unsubscribe_secret_env" in capsys.readouterr().err or secret is not None
    code, out = run("doctor", "--config", str(config))
    assert code == run_code, out
    assert "All checks passed" not in out
    assert "[error] web.unsubscribe_secret" in out


def test_doctor_lists_every_check_when_all_pass(config, monkeypatch):
    monkeypatch.setenv("UNSUB_SECRET", "s" * 40)
    monkeypatch.setenv("CARTRESCUE_HASH_KEY", "k" * 40)
    config.write_text(
        config.read_text().replace("[store]\n", '[store]\nhash_key_env = "CARTRESCUE_HASH_KEY"\n')
    )
    code, out = run("doctor", "--config", str(config))
    assert code == EXIT_OK, out
    areas = [line.split()[1] for line in out.splitlines() if line.startswith("  ok  ")]
    # one sample of each offer kind (and of the free-shipping line) per locale
    assert areas.count("offers") == 6 * 4
    assert [a for a in areas if a != "offers"] == [
        "config",
        "connector",
        "channels.sms",
        "channels.email",
        "templates",
        "store",
        "links",
        "web",
        "schedule",
    ]
    assert "one-click unsubscribe on" in out
    assert out.rstrip().endswith("All checks passed.")
    assert run("run", "--config", str(config))[0] == EXIT_OK


def test_doctor_writes_nothing(config, monkeypatch):
    monkeypatch.setenv("UNSUB_SECRET", "s" * 40)
    store = config.parent / "data" / "store.sqlite3"
    assert run("doctor", "--config", str(config))[0] == EXIT_OK
    assert not store.parent.exists()  # neither the store nor its folder was created
    assert run("run", "--config", str(config))[0] == EXIT_OK
    before = {p.name: p.stat().st_mtime_ns for p in store.parent.iterdir()}
    code, out = run("doctor", "--config", str(config))
    assert code == EXIT_OK, out
    assert "last pass" in out and "never" not in out
    assert {p.name: p.stat().st_mtime_ns for p in store.parent.iterdir()} == before


def test_doctor_reports_a_damaged_store(config, monkeypatch):
    monkeypatch.setenv("UNSUB_SECRET", "s" * 40)
    store = config.parent / "data" / "store.sqlite3"
    store.parent.mkdir()
    store.write_bytes(b"this is not a database" * 100)
    code, out = run("doctor", "--config", str(config))
    assert code != EXIT_OK
    assert "[error] store:" in out and "backup" in out


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root to run doctor as another user",
)
def test_doctor_warns_when_the_store_is_not_writable_by_its_user():
    """The store belongs to root (a doctor or run as root made it); the service user's
    doctor names the problem and the chown that fixes it."""
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    probe = subprocess.run(
        [*as_nobody, sys.executable, "-c", "import cartrescue"],
        capture_output=True,
        env={**os.environ, "HOME": "/", "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(
            "the user nobody cannot run this Python or import cartrescue (the checkout or its"
            " venv is in a folder only its owner may enter, as mktemp -d makes): clone it"
            " where others may read to run this test"
        )
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        root.chmod(0o755)
        config = root / "cartrescue.toml"
        config.write_text(BASE)
        config.chmod(0o644)
        assert main(["run", "--config", str(config)], out=io.StringIO()) == EXIT_OK
        data = root / "data"
        for path in (data, *data.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        result = subprocess.run(
            [
                *as_nobody,
                sys.executable,
                "-m",
                "cartrescue.cli",
                "doctor",
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "HOME": "/", "PYTHONDONTWRITEBYTECODE": "1"},
            check=False,
        )
        assert "Traceback" not in result.stderr, result.stderr
        assert f"[warning] store: the folder {data} is not writable by nobody" in result.stdout
        assert "fix: chown nobody" in result.stdout
        assert "is not readable and writable by nobody" in result.stdout
        with SQLiteStore(data / "store.sqlite3") as store:  # still a good store
            assert store.schema_version() >= 1


def test_doctor_reports_every_broken_part_at_once(tmp_path, monkeypatch):
    monkeypatch.delenv("UNSUB_SECRET", raising=False)
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    config = tmp_path / "cartrescue.toml"
    config.write_text(
        '[connector]\ntype = "shopify"\nshop = "nordlys.myshopify.com"\n'
        'token_env = "NO_SUCH_TOKEN"\n'
        '[channels.sms]\ntype = "console"\n'
        "[links]\ncode_length = 8\n"
        "[store]\npath = 5\n" + WEB
    )
    code, out = run("doctor", "--config", str(config))
    assert code == EXIT_CONFIG, out
    for key in (
        "connector.token_env",
        "links.base_url",
        "store.path",
        "web.unsubscribe_secret_env",
    ):
        assert f"[error] {key}: " in out, (key, out)
        assert f"{key}: {key}:" not in out
    assert "All checks passed" not in out


def test_doctor_shows_the_segment_of_each_sample_cart(config, monkeypatch):
    monkeypatch.setenv("UNSUB_SECRET", "s" * 40)
    config.write_text(
        config.read_text()
        + '[[segments]]\nname = "big"\nmin_value = 5000\n'
        + '[[segments.steps]]\ndelay = "1h"\nchannels = ["sms"]\n'
    )
    _code, out = run("doctor", "--config", str(config))
    line = next(x for x in out.splitlines() if x.startswith("  ok  segments "))
    assert line.split(None, 2)[2] == (
        "1 segment(s); sample carts: typical → default, worst case → big"
    )


def test_doctor_shows_each_offer_kind_and_warns_about_none(config, monkeypatch):
    monkeypatch.setenv("UNSUB_SECRET", "s" * 40)
    # a 28-character link: Arabic with a 13-character code in the message has room for it
    config.write_text(
        config.read_text().replace("https://go.shop.example/r/", "https://s.example/r/")
        + '[[segments]]\nname = "big"\nmin_value = 5000\n'
        + '[[segments.steps]]\ndelay = "1h"\nchannels = ["sms", "email"]\n'
        + "discount = { free_shipping = true }\n"
    )
    code, out = run("doctor", "--config", str(config))
    assert code == EXIT_OK, out
    assert "offer" not in "".join(line for line in out.splitlines() if "[" in line[:10])
    samples = [line.split(None, 2)[2] for line in out.splitlines() if " offers " in line]
    step = "sms step 3"  # the last step with an offer (the [policy] default), first channel
    for locale in ("en", "nb", "fi", "hu", "pt-BR", "ar"):
        for kind in ("percent", "amount", "free ship", "remaining"):
            (sample,) = [s for s in samples if s.startswith(f"{step} {locale} {kind}: ")]
            assert "STOP" in sample
            if kind != "remaining":
                assert "BACK10" in sample


def test_doctor_warns_when_a_users_template_cannot_word_a_kind(config, monkeypatch, tmp_path):
    monkeypatch.setenv("UNSUB_SECRET", "s" * 40)
    folder = tmp_path / "templates" / "sms"
    folder.mkdir(parents=True)
    (folder / "3.en.j2").write_text(
        "{{ shop_name }}: {% if discount %}{{ discount_percent.strip() }}% off {{ discount_code }} "
        "{% endif %}{{ link }} STOP"
    )
    config.write_text(config.read_text() + '[templates]\ndirs = ["templates"]\n')
    code, out = run("doctor", "--config", str(config))
    assert code == EXIT_OK, out
    assert "[warning] templates: sms/3.en.j2 (en, amount sample):" in out
    assert "[warning] templates: sms/3.en.j2 (en, free ship sample):" in out
    assert "[warning] templates: sms/3.en.j2 (en, percent sample" not in out


def test_doctor_warns_when_a_reason_segment_can_never_hear_a_reason(config, monkeypatch):
    monkeypatch.setenv("UNSUB_SECRET", "s" * 40)
    monkeypatch.setenv("TW_TOKEN", "t" * 32)
    segment = '[[segments]]\nname = "shipping-cost"\nreasons = ["shipping_cost"]\n'
    config.write_text(config.read_text() + segment)
    _code, out = run("doctor", "--config", str(config))
    assert "[warning] segments: segment shipping-cost matches the buyer's stated reason" in out
    config.write_text(BASE + WEB + 'twilio_auth_token_env = "TW_TOKEN"\n' + segment)
    _code, out = run("doctor", "--config", str(config))
    assert "stated reason" not in out


def test_doctor_reports_acknowledge_without_a_channel_that_can(tmp_path, monkeypatch):
    monkeypatch.setenv("UNSUB_SECRET", "s" * 40)
    config = tmp_path / "cartrescue.toml"
    text = BASE.replace('[channels.sms]\ntype = "console"\n', "") + WEB
    config.write_text(text + "[conversations]\nacknowledge = true\n")
    code, out = run("doctor", "--config", str(config))
    assert code != EXIT_OK
    assert "conversations.acknowledge" in out


def test_doctor_warns_about_channels_whose_status_callbacks_cannot_arrive():
    from cartrescue.channels.twilio import TwilioSMS
    from cartrescue.doctor import signal_problems
    from cartrescue.web_settings import WebSettings

    def sms(callback):
        return TwilioSMS(
            account_sid="AC" + "0" * 32,
            auth_token="t" * 32,
            from_number="+4790000000",
            status_callback=callback,
        )

    web = WebSettings("https://shop.example/cartrescue", twilio_auth_token="t" * 32)
    (problem,) = signal_problems({"sms": sms(None)}, web)
    assert (problem.area, problem.severity) == ("channels.sms", "warning")
    assert "https://shop.example/cartrescue/twilio/status" in problem.fix
    callback = "https://shop.example/cartrescue/twilio/status"
    assert signal_problems({"sms": sms(callback)}, web) == []
    (unverified,) = signal_problems({"sms": sms(callback)}, None)
    assert "twilio_auth_token_env" in unverified.fix
