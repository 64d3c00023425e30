"""Users' own strategies: modules named in ``ACCESSBENCH_PLUGINS`` (or ``run --plugins``) are imported so that their
``@register`` decorators run, in the CLI and in every configuration's worker process.

Each entry is a module name (``mylab.strategies``, importable from ``PYTHONPATH``) or a path to a ``.py`` file;
entries are separated by commas.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from accessbench.kernels.errors import AccessBenchError

__all__ = ["ENV", "PluginError", "load_plugins", "loaded_plugins", "plugin_env"]

ENV = "ACCESSBENCH_PLUGINS"
_LOADED: dict[str, str] = {}  # spec -> module name


class PluginError(AccessBenchError):
    """A plugin module that cannot be found or fails while importing."""


def _split(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or os.sep in spec


def _load_one(spec: str) -> str:
    if _is_path(spec):
        path = Path(spec).expanduser().resolve()
        key = str(path)
        if key in _LOADED:
            return _LOADED[key]
        if not path.is_file():
            raise PluginError(f"plugin file {spec} does not exist")
        name = f"accessbench_plugin_{path.stem}_{hashlib.sha1(key.encode()).hexdigest()[:8]}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise PluginError(f"plugin file {spec} is not a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise PluginError(f"plugin {spec} failed to import: {type(exc).__name__}: {exc}") from exc
        _LOADED[key] = name
        return name
    if spec in _LOADED:
        return _LOADED[spec]
    try:
        importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and spec.startswith(exc.name):
            raise PluginError(f"plugin module {spec!r} not found (is it on PYTHONPATH?)") from None
        raise PluginError(f"plugin {spec} failed to import: {exc}") from exc
    except Exception as exc:
        raise PluginError(f"plugin {spec} failed to import: {type(exc).__name__}: {exc}") from exc
    _LOADED[spec] = spec
    return spec


def load_plugins(extra: Sequence[str] = ()) -> list[str]:
    """Import the plugins named in ``$ACCESSBENCH_PLUGINS`` and ``extra`` (each once); returns their module names."""
    return [_load_one(s) for s in [*_split(os.environ.get(ENV)), *extra]]


def loaded_plugins() -> list[str]:
    """The plugins imported so far, as entries a child process can import (file paths made absolute)."""
    return list(_LOADED)


def plugin_env() -> str:
    """The ``ACCESSBENCH_PLUGINS`` value that makes a worker process import the same plugins as this one.

    The plugins this process imported, plus those ``$ACCESSBENCH_PLUGINS`` names that it has not imported (yet):
    a worker must never lose a plugin the environment asks for.
    """
    entries = loaded_plugins()
    for spec in _split(os.environ.get(ENV)):
        key = str(Path(spec).expanduser().resolve()) if _is_path(spec) else spec
        if key not in entries:
            entries.append(key)
    return ",".join(entries)
