"""``cartrescue preview``, ``cartrescue serve-links`` and the [templates] settings."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from cartrescue.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, main
from cartrescue.config import load_config
from cartrescue.errors import ConfigError
from cartrescue.links import SelfHostedLinks
from cartrescue.preview import SAMPLE_RECOVERY_URL, SAMPLE_SHORT_LINK
from cartrescue.store.sqlite import SQLiteStore

SHOP = """
[shop]
name = "Nordlys Design"
locale = "nb"
timezone = "Europe/Oslo"
home_url = "https://nordlys-design.example"
"""


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def rows(output: str) -> list[dict[str, str]]:
    """The table's rows, cut at the columns the command prints."""
    found = []
    for line in output.splitlines():
        if line[:9].strip() in ("sms", "whatsapp", "email"):
            found.append(
                {
                    "channel": line[:9].strip(),
                    "step": line[9:14].strip(),
                    "locale": line[14:21].strip(),
                    "data": line[21:32].strip(),
                    "encoding": line[32:41].strip(),
                    "length": line[41:50].strip(),
                    "segments": line[52:56].strip(),
                    "fits": line[56:61].strip(),
                    "template": line[61:].split()[0],
                }
            )
    return found


KINDS = ("percent", "amount", "free ship", "remaining")
"""The DATA of the rows that show each offer kind after the steps' rows."""


def step_rows(output: str) -> list[dict[str, str]]:
    """The rows of the steps themselves, without the offer-kind samples."""
    return [r for r in rows(output) if r["data"] not in KINDS]


def config_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cartrescue.toml"
    path.write_text(SHOP + text, encoding="utf-8")
    return str(path)


def test_without_a_config_every_default_template_fits() -> None:
    code, output = run("preview")
    assert code == EXIT_OK
    assert "package templates, no configuration" in output
    assert f"Link: {SAMPLE_SHORT_LINK} (20 characters" in output
    table = step_rows(output)
    # 3 channels x 3 steps x 6 locales x 2 data sets.
    assert len(table) == 3 * 3 * 6 * 2
    assert {r["fits"] for r in rows(output)} == {"yes"}
    sms = [r for r in table if r["channel"] == "sms"]
    assert {r["segments"] for r in sms} == {"1"}
    assert {r["encoding"] for r in sms if r["locale"] == "ar"} == {"UCS-2"}
    assert {r["data"] for r in sms} == {"typical", "worst case"}
    assert {r["template"] for r in sms if r["locale"] == "pt-BR" and r["step"] == "2"} == {
        "sms/2.pt-BR.j2"
    }
    # and each offer kind at step 3: 3 channels x 6 locales x 4 kinds
    samples = [r for r in rows(output) if r["data"] in KINDS]
    assert len(samples) == 3 * 6 * 4
    assert {r["step"] for r in samples} == {"3"}
    assert "Each offer kind at step 3, worst-case data" in output
    assert "180 message(s) rendered: 180 fit, 0 do not." in output
    assert "| Nordlys Design: Hi Emily, you left Linen napkins in your cart." in output
    # the demo shop ships free from 1 500 NOK: the Norwegian cart is told how far it is
    assert "| Nordlys Design: Hei Kari! Du er bare " in output
    assert " unna fri frakt. Handlekurven din: https://s.no/Ab3dE9x" in output
    assert "[cart_reminder_1 (pt_BR)]" in output
    assert "| Subject: Fortsatt i tenkeboksen?" in output


def test_raw_shopify_urls_do_not_fit_and_preview_says_which(tmp_path: Path) -> None:
    path = config_file(tmp_path, "")
    code, output = run("preview", "--config", path, "--channel", "sms", "--locale", "en")
    assert code == EXIT_FAILED
    assert f"Link: {SAMPLE_RECOVERY_URL} (120 characters; no [links]" in output
    lines = [line for line in output.splitlines() if line.startswith("sms ")]
    assert len(lines) == 6 + 4
    for line in lines:
        assert " NO " in line
        assert "sms/" in line
    assert "!! too long: 174 GSM-7 units, 160 allowed even after shortening" in output
    assert "10 message(s) rendered: 0 fit, 10 do not." in output
    assert "set [links] base_url to a short address" in output


def test_links_decide_the_link_length(tmp_path: Path) -> None:
    path = config_file(tmp_path, '[links]\nbase_url = "https://nrdl.no/r/"\ncode_length = 7\n')
    code, output = run("preview", "--config", path, "--channel", "sms")
    assert code == EXIT_OK
    assert "Link: https://nrdl.no/r/abcdefg (25 characters; as long as your [links]" in output
    long = config_file(tmp_path, '[links]\nbase_url = "https://go.nordlys-design.example/r/"\n')
    code, output = run("preview", "--config", long, "--channel", "sms", "--locale", "ar")
    assert code == EXIT_FAILED
    assert "sms      1    ar     typical    UCS-2" in output


def test_user_templates_are_previewed_and_a_bad_one_fails(tmp_path: Path) -> None:
    folder = tmp_path / "templates" / "sms"
    folder.mkdir(parents=True)
    (folder / "1.nb.j2").write_text(
        "{{ shop_name }}: " + "Hei! " * 40 + "{{ link }}", encoding="utf-8"
    )
    (folder / "2.nb.j2").write_text("{{ shop_name }}: {{ nope }}", encoding="utf-8")
    path = config_file(tmp_path, '[templates]\ndirs = ["templates"]\n')
    code, output = run(
        "preview",
        "--config",
        path,
        "--channel",
        "sms",
        "--locale",
        "nb",
        "--link",
        SAMPLE_SHORT_LINK,
    )
    assert code == EXIT_FAILED
    assert "your templates: " + str(tmp_path / "templates") in output
    assert "!! too long: 236 GSM-7 units" in output
    assert "'nope' is undefined" in output
    assert "sms      3    nb     typical    GSM-7" in output
    assert [r["fits"] for r in rows(output) if r["data"] in KINDS] == ["yes"] * 4
    assert "10 message(s) rendered: 6 fit, 4 do not." in output


def test_missing_template_folder_is_reported(tmp_path: Path) -> None:
    path = config_file(tmp_path, '[templates]\ndirs = ["nowhere"]\n')
    code, output = run("preview", "--config", path, "--channel", "email", "--step", "2")
    assert code == EXIT_OK
    assert f"WARNING: template folder {tmp_path / 'nowhere'} does not exist" in output
    assert len(step_rows(output)) == 12


def test_locale_filter_and_fallback() -> None:
    code, output = run("preview", "--locale", "nb-NO", "--channel", "sms", "--step", "1")
    assert code == EXIT_OK
    table = rows(output)
    assert [(r["locale"], r["template"]) for r in table] == [("nb-NO", "sms/1.nb.j2")] * 6


def test_max_segments_from_config(tmp_path: Path) -> None:
    path = config_file(tmp_path, "[templates]\nmax_segments = 2\nsmart_encoding = false\n")
    code, output = run(
        "preview", "--config", path, "--channel", "sms", "--locale", "en", "--step", "1"
    )
    # Two segments hold the raw URL; the first variant fits.
    assert code == EXIT_OK
    assert "at most 2 SMS segment(s); smart encoding off" in output


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[templates]\nmax_segments = 0\n", "templates.max_segments"),
        ("[templates]\nmax_segments = true\n", "templates.max_segments"),
        ('[templates]\nsmart_encoding = "yes"\n', "templates.smart_encoding"),
        ("[templates]\nsmart = true\n", "templates.smart"),
    ],
)
def test_templates_settings_mistakes(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, text=text, env={}).renderer()
    assert caught.value.key == key


def test_renderer_gets_the_settings() -> None:
    config = load_config(
        None, text=SHOP + "[templates]\nmax_segments = 3\nsmart_encoding = false\n", env={}
    )
    renderer = config.renderer()
    assert (renderer.max_segments, renderer.smart_encoding, renderer.shop_locale) == (
        3,
        False,
        "nb",
    )


def test_preview_with_a_bad_config_is_a_config_error(tmp_path: Path) -> None:
    path = config_file(tmp_path, '[links]\nbase_url = "nrdl.no"\n')
    code, _ = run("preview", "--config", path)
    assert code == EXIT_CONFIG


def test_serve_links_needs_a_links_table(tmp_path: Path) -> None:
    path = config_file(tmp_path, "")
    code, _ = run("serve-links", "--config", path, "--port", "0")
    assert code == EXIT_CONFIG


def test_serve_links_serves_the_redirects(tmp_path: Path) -> None:
    store_path = tmp_path / "store.sqlite3"
    path = config_file(
        tmp_path,
        f'[store]\npath = "{store_path}"\n[links]\nbase_url = "https://nrdl.no/r/"\n',
    )
    with SQLiteStore(store_path) as store:
        config = load_config(path, env={})
        links = config.links(store)
        assert isinstance(links, SelfHostedLinks)
        short = links.shorten(SAMPLE_RECOVERY_URL, checkout_id="c1", step=1, channel="sms")
    process = subprocess.Popen(
        [sys.executable, "-m", "cartrescue.cli", "serve-links", "--config", path, "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith(
            "Serving the short links of https://nrdl.no/r/ on http://127.0.0.1:"
        )
        port = int(banner.split("127.0.0.1:")[1].split("/")[0])
        code = short.rsplit("/", 1)[1]
        response = requests.get(
            f"http://127.0.0.1:{port}/r/{code}", allow_redirects=False, timeout=5
        )
        assert response.status_code == 302
        assert response.headers["Location"].startswith(SAMPLE_RECOVERY_URL + "&utm_source=")
        assert requests.get(f"http://127.0.0.1:{port}/r/nothere1", timeout=5).status_code == 404
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == EXIT_OK  # generous: CI machines may be busy
    with SQLiteStore(store_path) as store:
        assert store.stats(datetime.now(UTC)).clicks == 1


def test_preview_shows_each_sample_carts_segment(tmp_path: Path) -> None:
    path = config_file(
        tmp_path,
        '[[segments]]\nname = "big"\nmin_value = 5000\n'
        '[[segments.steps]]\ndelay = "1h"\nchannels = ["sms"]\n'
        "discount = { percent = 20 }\n"
        '[[segments]]\nname = "small"\nmax_value = 5000\nskip = true\n',
    )
    code, output = run(
        "preview",
        "--config",
        path,
        "--channel",
        "sms",
        "--locale",
        "en",
        "--link",
        "https://nrdl.no/r/abcdefg",
    )
    assert code == EXIT_OK, output
    assert "Segments: typical → small (skipped), worst case → big\n" in output
    # the big segment's step 1 offers a discount: previewed beside the plain step 1
    assert len([r for r in rows(output) if r["step"] == "1"]) == 4
