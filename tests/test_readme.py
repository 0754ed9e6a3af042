"""The READMEs' code blocks are true: every Python block runs as written and type-checks,
every TOML block parses, and every ``cartrescue ...`` command line of a sh block is one the
CLI accepts.

Each Python block runs in a fresh interpreter, in an empty temporary folder, with a clean
environment holding only what the README tells the reader to set. Blocks that talk to a shop
read ``SHOPIFY_SHOP``, ``SHOPIFY_ADMIN_TOKEN`` and ``SHOPIFY_BASE_URL`` (or ``WC_URL``,
``WC_CONSUMER_KEY`` and ``WC_CONSUMER_SECRET``); here those point at the bundled fakes. A
block defining ``Test*`` classes is run with pytest.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cartrescue.cli import build_parser
from cartrescue.demo import DemoConnector
from cartrescue_testing.fake_shopify import FakeShopify
from cartrescue_testing.fake_woocommerce import FakeWooCommerce

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    ROOT / "README.md",
    ROOT / "testing" / "README.md",
    *sorted(ROOT.glob("examples/*/README.md")),
]
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int
    lang: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    @property
    def module(self) -> str:
        """A file name unique to the block (pytest's ``test_`` prefix for test classes)."""
        stem = re.sub(r"\W", "_", str(self.doc.relative_to(ROOT).parent)).strip("_") or "root"
        prefix = "test_" if self.is_pytest else "readme_"
        return f"{prefix}{stem}_{self.line}.py"

    @property
    def is_pytest(self) -> bool:
        return re.search(r"^class Test\w*", self.code, re.MULTILINE) is not None


def blocks(lang: str) -> list[Block]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) == lang:
                line = text.count("\n", 0, match.start()) + 1
                found.append(Block(doc, line, lang, match.group(2)))
    return found


PYTHON = blocks("python")


def test_the_readme_has_python_blocks() -> None:
    assert len([b for b in PYTHON if b.doc.name == "README.md"]) >= 10


@pytest.fixture(scope="module")
def shops() -> Iterator[dict[str, str]]:
    checkouts = list(DemoConnector().abandoned_checkouts(None))
    woo = FakeWooCommerce(timezone="Europe/Oslo")
    woo.add_order(
        billing={"email": "kari@example.no", "phone": "912 34 567", "country": "NO"},
        line_items=[{"name": "Wool blanket", "quantity": 1, "price": "1290.00"}],
    )
    with FakeShopify.from_checkouts(checkouts) as shopify, woo:
        yield {
            "SHOPIFY_SHOP": shopify.shop,
            "SHOPIFY_ADMIN_TOKEN": shopify.token,
            "SHOPIFY_BASE_URL": shopify.base_url,
            "WC_URL": woo.base_url,
            "WC_CONSUMER_KEY": woo.consumer_key,
            "WC_CONSUMER_SECRET": woo.consumer_secret,
            # the variables the README's cartrescue.toml examples name
            "SHOPIFY_WEBHOOK_SECRET": "shopify-client-secret-0123456789",
            "TWILIO_AUTH_TOKEN": "twilio-auth-token-0123456789",
            "SMTP_PASSWORD": "smtp-password-0123456789",
            "CARTRESCUE_UNSUBSCRIBE_SECRET": "unsubscribe-secret-0123456789 old-secret-0123456789",
        }


def clean_env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


@pytest.mark.parametrize("block", PYTHON, ids=[b.name for b in PYTHON])
def test_python_block_runs_as_written(block: Block, shops: dict[str, str], tmp_path: Path) -> None:
    env = clean_env(tmp_path, shops)
    if "cartrescue.toml" in block.code:  # the file `cartrescue init` writes, as the README says
        init = "from cartrescue.cli import main; raise SystemExit(main(['init']))"
        subprocess.run([sys.executable, "-c", init], cwd=tmp_path, env=env, check=True)
    (tmp_path / block.module).write_text(block.code, encoding="utf-8")
    if block.is_pytest:
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", block.module]
    else:
        command = [sys.executable, block.module]
    done = subprocess.run(
        command,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{block.name} failed:\n{done.stdout}\n{done.stderr}"
    # a message rendered without shop= speaks for the connector ("shopify: Hei Kari!")
    assert not re.search(r"^(shopify|woocommerce|demo): ", done.stdout, re.MULTILINE), done.stdout
    # a pass that reached no shop still exits 0: its summary says so
    assert not re.search(r"\b0 checkout\(s\) fetched|did not complete", done.stdout), done.stdout
    if block.is_pytest:
        assert re.search(r"\d+ passed", done.stdout), done.stdout
        assert not re.search(r"\d+ (failed|error)", done.stdout), done.stdout


def test_every_recovery_of_the_readme_names_its_shop() -> None:
    """Whatever the hour the blocks run at (quiet hours may hold every message), a
    ``Recovery`` without ``shop=`` would sign its messages with the connector's name."""
    missing = []
    for block in PYTHON:
        for node in ast.walk(ast.parse(block.code)):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "Recovery"
                and "shop" not in {k.arg for k in node.keywords}
            ):
                missing.append(f"{block.name} (line {node.lineno} of the block)")
    assert not missing, f"Recovery without shop=: {missing}"


def test_python_blocks_type_check(tmp_path: Path) -> None:
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent)) or shutil.which("mypy")
    if mypy is None:
        pytest.skip("mypy is not installed (it comes with the dev extras)")
    for block in PYTHON:
        (tmp_path / block.module).write_text(block.code, encoding="utf-8")
    done = subprocess.run(
        [mypy, "--strict", "--no-incremental", "--cache-dir", os.devnull, "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


TOML = blocks("toml")


@pytest.mark.parametrize("block", TOML, ids=[b.name for b in TOML])
def test_toml_block_parses(block: Block) -> None:
    tomllib.loads(block.code)


def cli_lines() -> list[tuple[str, list[str]]]:
    """Each ``cartrescue ...`` command of the sh blocks, with its arguments."""
    found = []
    for block in blocks("sh"):
        for raw in block.code.splitlines():
            lexer = shlex.shlex(raw, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            words: list[str] = []
            for token in [*lexer, ";"]:
                if token not in {"&&", "||", ";", "|", "&"}:
                    words.append(token)
                    continue
                while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                    words.pop(0)  # VAR=value before the command
                if words and words[0] == "cartrescue":
                    found.append((f"{block.name}: {shlex.join(words)}", words[1:]))
                words = []
    return found


CLI = cli_lines()


def test_the_readme_has_cli_lines() -> None:
    assert len(CLI) >= 10


@pytest.mark.parametrize(("line", "args"), CLI, ids=[line for line, _ in CLI])
def test_cli_line_parses(line: str, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"{line}: the CLI refuses it: {capsys.readouterr().err}")
