"""From a built wheel to a cron job: what a store owner does, done by a test.

The library is built (sdist and wheel) with ``python -m build``, the wheel is installed into a
virtualenv made from nothing, and the installed ``cartrescue`` runs ``demo`` and ``init``. Then,
as root, the examples/ deployment is installed as examples/README.md says, for a new system user,
and the wrapper runs twice as that user against a fake Shopify on loopback.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from cartrescue.clock import utc_now

from .conftest import make_checkout

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _base_python() -> str:
    """A Python other users can run: the system's when it is new enough (a pyenv build under
    /root is not readable by a service user), else the one running the tests."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            done = subprocess.run(
                [candidate, "-c", "import sys, venv; print(sys.version_info >= (3, 11))"],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.stdout.strip() == "True":
                return candidate
    return getattr(sys, "_base_executable", sys.executable)


@pytest.fixture(scope="module")
def dist() -> Iterator[Path]:
    """The sdist and wheel of this checkout, built as a release would be (in an isolated
    build environment)."""
    pytest.importorskip("build", reason="pip install build (it is in the test extras)")
    out = Path(tempfile.mkdtemp(prefix="cartrescue-dist-"))
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    yield out
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="module")
def installed(dist: Path) -> Iterator[Path]:
    """A virtualenv made from nothing holding only the wheel and its dependencies, in a folder
    any user may read (the deployment test runs it as a service user)."""
    home = Path(tempfile.mkdtemp(prefix="cartrescue-venv-", dir="/var/tmp"))
    home.chmod(0o755)
    venv = home / "venv"
    subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True)
    wheel = next(dist.glob("cartrescue-*.whl"))
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(ROOT / "constraints.txt"),
            str(wheel),
        ],
        check=True,
    )
    yield venv
    shutil.rmtree(home, ignore_errors=True)


def test_the_build_makes_an_sdist_and_a_wheel(dist: Path) -> None:
    assert len(list(dist.glob("cartrescue-*.tar.gz"))) == 1
    assert len(list(dist.glob("cartrescue-*-py3-none-any.whl"))) == 1


def test_the_installed_wheel_runs_the_demo_and_init(installed: Path, tmp_path: Path) -> None:
    cartrescue = str(installed / "bin" / "cartrescue")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    demo = subprocess.run(
        [cartrescue, "demo"], capture_output=True, text=True, env=env, cwd=tmp_path, check=False
    )
    assert demo.returncode == 0, demo.stderr
    assert "sent" in demo.stdout.lower()
    init = subprocess.run(
        [cartrescue, "init", str(tmp_path / "shop")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "shop" / "cartrescue.toml").is_file()
    assert any((tmp_path / "shop" / "templates").rglob("*.j2"))
    # What a wheel installs is what the library needs in production: no test doubles.
    listed = subprocess.run(
        [str(installed / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "cartrescue" in names
    assert "pytest" not in names


def _can_make_users() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create a system user (CI runs as root)"
    for tool in ("useradd", "userdel", "runuser", "flock"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


@pytest.fixture
def service_user() -> Iterator[str]:
    reason = _can_make_users()
    if reason:
        pytest.skip(reason)
    name = "crt" + uuid.uuid4().hex[:8]
    home = Path(tempfile.mkdtemp(prefix="cartrescue-opt-", dir="/var/tmp"))
    home.chmod(0o755)
    user_home = home / "cartrescue"
    subprocess.run(
        [
            "useradd",
            "--system",
            "--create-home",
            "--home-dir",
            str(user_home),
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        check=True,
    )
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)
        shutil.rmtree(home, ignore_errors=True)


def test_the_examples_deployment_runs_twice_as_an_unprivileged_user(
    installed: Path, service_user: str, tmp_path: Path
) -> None:
    from cartrescue_testing.fake_shopify import FakeShopify

    user = pwd.getpwnam(service_user)
    home = Path(user.pw_dir)
    etc = home.parent / "etc"
    logs = home.parent / "log"
    now = utc_now()
    checkouts = [make_checkout("2001", abandoned_at=now - timedelta(hours=2))]
    with FakeShopify.from_checkouts(checkouts, throttle=False) as shop:
        # The steps of examples/README.md, with this test's folders for /opt and /etc.
        (home / ".venv").symlink_to(installed)
        # The owner's edit: the example file, with the shop's connector filled in.
        config = re.sub(
            r"(?ms)^\[connector\]\n.*?(?=^\[)",
            f'[connector]\ntype = "shopify"\nshop = "{shop.shop}"\n'
            f'token_env = "SHOPIFY_ADMIN_TOKEN"\nbase_url = "{shop.base_url}"\n\n',
            (EXAMPLES / "cartrescue.toml").read_text(encoding="utf-8"),
        )
        assert 'type = "shopify"' in config
        config_path = home / "cartrescue.toml"
        config_path.write_text(config, encoding="utf-8")
        uid, gid = user.pw_uid, user.pw_gid
        os.chown(config_path, uid, gid)
        config_path.chmod(0o640)
        shutil.copy(EXAMPLES / "cron.sh", home / "cron.sh")
        os.chown(home / "cron.sh", 0, gid)
        (home / "cron.sh").chmod(0o750)
        etc.mkdir(mode=0o750)
        os.chown(etc, 0, gid)
        env_file = etc / "env"
        env_file.write_text(f"SHOPIFY_ADMIN_TOKEN={shop.token}\n", encoding="utf-8")
        os.chown(env_file, 0, gid)
        env_file.chmod(0o640)
        logs.mkdir(mode=0o750)
        os.chown(logs, uid, gid)

        def as_user(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [
                    "runuser",
                    "-u",
                    service_user,
                    "--",
                    "env",
                    "-i",
                    "PATH=/usr/bin:/bin",
                    f"CARTRESCUE_HOME={home}",
                    f"CARTRESCUE_ENV_FILE={env_file}",
                    *argv,
                ],
                capture_output=True,
                text=True,
                check=False,
            )

        for _ in range(2):
            done = as_user("sh", "-c", f"{home}/cron.sh >> {logs}/cartrescue.log 2>&1")
            log = (logs / "cartrescue.log").read_text(encoding="utf-8")
            assert done.returncode == 0, log
        assert "Traceback" not in log
        stats = as_user(
            str(home / ".venv/bin/cartrescue"), "stats", "--json", "--config", str(config_path)
        )
        assert stats.returncode == 0, stats.stdout + stats.stderr
        figures = json.loads(stats.stdout)
        assert figures["passes_completed"] == 2
        store = home / "cartrescue.sqlite3"
        assert store.stat().st_uid == uid
