"""Finding connectors and channels: entry points, or a dotted ``package.module:Class`` path.

Built-ins register under the same entry-point groups as third-party plugins
(``cartrescue.connectors`` and ``cartrescue.channels``), so config names them all alike.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from .errors import PluginError

__all__ = ["CHANNELS", "CONNECTORS", "PluginInfo", "discover", "load_plugin"]

CONNECTORS = "cartrescue.connectors"
CHANNELS = "cartrescue.channels"


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One plugin found through an entry point, and whether it loads."""

    group: str
    name: str
    value: str
    package: str | None
    error: str | None = None


def _package(ep: EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return None if dist is None else str(dist.name)


def load_plugin(group: str, name: str, *, key: str | None = None) -> type:
    """The class registered as ``name`` in ``group``, or at the dotted path ``name``
    (``package.module:Class``).

    Raises :class:`~cartrescue.errors.PluginError` naming the package when it cannot be
    loaded, listing the names available when none is registered under ``name``, and naming
    both packages when two register the same name.
    """
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
            found = getattr(module, attr)
        except Exception as err:  # a broken module is reported, like a broken entry point
            raise PluginError(
                f"cannot load {name!r}: {type(err).__name__}: {err}", key=key
            ) from err
        if not isinstance(found, type):
            raise PluginError(f"{name!r} is not a class", key=key)
        return found
    matches = entry_points(group=group, name=name)
    if not matches:
        known = sorted({ep.name for ep in entry_points(group=group)})
        raise PluginError(
            f"no {group} plugin named {name!r}; installed: {', '.join(known) or 'none'}",
            key=key,
        )
    packages = sorted({_package(ep) or "?" for ep in matches})
    if len(packages) > 1:
        raise PluginError(
            f"{len(packages)} packages register a {group} plugin named {name!r} "
            f"({', '.join(packages)}); uninstall one, or name the class as 'module:Class'",
            key=key,
        )
    ep = next(iter(matches))
    try:
        found = ep.load()
    except Exception as err:  # a broken plugin is reported, never fatal to discovery
        package = _package(ep)
        raise PluginError(
            f"plugin {name!r} from package {package or '?'} failed to load: "
            f"{type(err).__name__}: {err}",
            key=key,
            package=package,
        ) from err
    if not isinstance(found, type):
        raise PluginError(f"plugin {name!r} ({ep.value}) is not a class", key=key)
    return found


def discover(group: str) -> list[PluginInfo]:
    """Every plugin registered in ``group``, each loaded once to see whether it works."""
    found: list[PluginInfo] = []
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        error = None
        try:
            ep.load()
        except Exception as err:  # reported by package name, the rest goes on
            error = f"{type(err).__name__}: {err}"
        found.append(PluginInfo(group, ep.name, ep.value, _package(ep), error))
    return found
