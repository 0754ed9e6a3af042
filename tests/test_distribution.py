"""The installed library holds only what production runs; the test doubles are the
``cartrescue-testing`` distribution (``testing/``), a pytest plugin at the same version."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from importlib.metadata import entry_points, version
from pathlib import Path

import pytest

import cartrescue
from cartrescue.registry import CHANNELS, CONNECTORS

ROOT = Path(__file__).resolve().parent.parent
TEST_ONLY = ("graphql-core", "graphql_core", "pytest", "cartrescue-testing", "cartrescue_testing")


def _setuptools_builds_it() -> bool:
    try:
        major = int(version("setuptools").split(".")[0])
    except Exception:  # not installed, or a version we cannot read
        return False
    return major >= 77


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    if not _setuptools_builds_it():
        pytest.skip("setuptools>=77 is needed to build the wheel offline: pip install -e '.[test]'")
    work = tmp_path_factory.mktemp("wheel")
    # A copy of what the build reads, so the build leaves nothing in the working tree.
    project = work / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(
        ROOT / "src", project / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
    )
    out = work / "dist"
    offline = ["--no-deps", "--no-build-isolation", "--no-index", "--quiet"]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", *offline, "--wheel-dir", str(out), str(project)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (path,) = out.glob("cartrescue-*.whl")
    with zipfile.ZipFile(path) as built:
        yield built


def _dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    (member,) = [n for n in wheel.namelist() if n.endswith(f".dist-info/{name}")]
    return wheel.read(member).decode()


def test_the_wheel_holds_no_test_double(wheel):
    names = wheel.namelist()
    assert "cartrescue/engine.py" in names  # the build did build the library
    assert "cartrescue/demo.py" in names and "cartrescue/data/demo_shop.json" in names
    assert [n for n in names if n.startswith(("cartrescue/testing", "cartrescue_testing"))] == []
    assert [n for n in names if "fake_" in n or n.endswith("/contracts.py")] == []


def test_the_wheel_requires_no_test_only_dependency(wheel):
    metadata = Parser().parsestr(_dist_info(wheel, "METADATA"))
    required = [r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert any(r.startswith("requests") for r in required)
    assert [r for r in required if r.split(";")[0].strip().lower().startswith(TEST_ONLY)] == []


def test_the_wheel_registers_only_production_plugins(wheel):
    text = _dist_info(wheel, "entry_points.txt")
    groups: dict[str, dict[str, str]] = {}
    group = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            group = line.strip("[]")
        elif "=" in line:
            name, _, value = line.partition("=")
            groups.setdefault(group, {})[name.strip()] = value.strip()
    assert set(groups[CONNECTORS]) >= {"shopify", "woocommerce"}
    for name, value in groups[CONNECTORS].items():
        assert value.startswith("cartrescue.connectors."), name
    for name, value in groups[CHANNELS].items():
        assert value.startswith("cartrescue.channels."), name
    assert "demo" not in groups[CONNECTORS] and "memory" not in groups[CHANNELS]


def test_installed_plugins_are_production_plugins_and_the_testing_package_adds_none():
    for group in (CONNECTORS, CHANNELS):
        for ep in entry_points(group=group):
            package = ep.dist.name if ep.dist is not None else None
            assert package != "cartrescue-testing", ep
            assert not ep.value.startswith(("cartrescue.testing", "cartrescue_testing")), ep
            assert ep.name not in ("demo", "memory"), ep


def test_the_testing_package_is_a_pytest_plugin_found_through_its_entry_point(pytestconfig):
    (ep,) = [ep for ep in entry_points(group="pytest11") if ep.value == "cartrescue_testing.plugin"]
    assert ep.dist is not None and ep.dist.name == "cartrescue-testing"
    plugin = pytestconfig.pluginmanager.get_plugin(ep.name)
    assert plugin is not None and plugin.__name__ == "cartrescue_testing.plugin"


def test_the_testing_package_is_versioned_with_the_library_and_brings_graphql():
    library = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    testing = tomllib.loads((ROOT / "testing" / "pyproject.toml").read_text("utf-8"))["project"]
    # The library reads its version from cartrescue/_version.py; the testing package's is
    # written out, and must be the same.
    assert library["dynamic"] == ["version"]
    assert testing["version"] == cartrescue.__version__ == version("cartrescue")
    assert version("cartrescue-testing") == cartrescue.__version__
    assert f"cartrescue=={cartrescue.__version__}" in testing["dependencies"]
    assert any(d.startswith("graphql-core") for d in testing["dependencies"])
    assert not any(d.startswith("graphql-core") for d in library["dependencies"])
