"""Strategies by name: ``register`` a class, ``create`` an instance from options, list ``availability``."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .base import AccessStrategy
from .errors import InvalidOptions, StrategyUnavailable

__all__ = ["availability", "capabilities", "create", "get", "names", "option_docs", "option_fields", "parse_options", "register"]

_REGISTRY: dict[str, type[AccessStrategy]] = {}
_LOADED = False
S = TypeVar("S", bound=type[AccessStrategy])


def register(name: str) -> Callable[[S], S]:
    """Class decorator: make a strategy creatable as ``name``."""

    def deco(cls: S) -> S:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"strategy name {name!r} registered twice")
        if not (dataclasses.is_dataclass(cls.Options) and cls.Options.__dataclass_params__.frozen):
            raise TypeError(f"{cls.__name__}.Options must be a frozen dataclass")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_builtin() -> None:
    """Import every module of ``accessbench.kernels.strategies`` once so each registers itself."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import accessbench.kernels.strategies as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{pkg.__name__}.{info.name}")


def names() -> list[str]:
    """Registered strategy names, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def get(name: str) -> type[AccessStrategy]:
    """The class registered as ``name``; unknown names raise ``InvalidOptions`` listing the valid ones."""
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidOptions(f"unknown strategy {name!r}; valid: {', '.join(names())}") from None


def capabilities(name: str, **options: Any) -> dict[str, bool]:
    """``needs_cuda`` and ``supports_ranks`` of strategy ``name`` with ``options``, without building it."""
    return get(name).capabilities(parse_options(name, options))


def option_docs(name: str) -> dict[str, dict[str, str]]:
    """Each option of strategy ``name``: ``type`` (or the allowed values), ``default`` and ``meaning`` (from the
    Options docstring's ``name``: meaning lines; empty where the docstring says nothing)."""
    cls = get(name).Options
    doc = inspect.getdoc(cls) or ""
    meanings: dict[str, str] = {}
    for m in re.finditer(r"^\s*((?:``\w+``(?:,\s*|\s+and\s+|\s*/\s*)?)+):\s*(.*?)(?=^\s*``\w+``|\Z)", doc,
                         re.S | re.M):
        for opt in re.findall(r"``(\w+)``", m.group(1)):
            meanings.setdefault(opt, " ".join(m.group(2).split()))
    sentences = [" ".join(x.split()) for x in re.split(r"(?<=[.)])\s+(?=``|[A-Z])", doc)]
    for f in dataclasses.fields(cls):  # else the first sentence that names it (or its ``prefix_*`` family)
        if f.name not in meanings:
            family = [f"``{f.name.split('_')[0]}_*``"] if "_" in f.name else []
            hit = next((x for x in sentences if f"``{f.name}``" in x), None) or next(
                (x for x in sentences if any(fam in x for fam in family)), None)
            if hit:
                meanings[f.name] = hit
    hints = typing.get_type_hints(cls)
    out: dict[str, dict[str, str]] = {}
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name, f.type)
        literal = [a for a in typing.get_args(hint) if typing.get_origin(a) is typing.Literal] or (
            [hint] if typing.get_origin(hint) is typing.Literal else [])
        if literal:
            kind = "|".join(str(v) for v in typing.get_args(literal[0]))
        else:
            kind = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "?")  # type: ignore[misc]
        out[f.name] = {"type": str(kind), "default": str(default), "meaning": meanings.get(f.name, "")}
    return out


def option_fields(name: str) -> dict[str, dataclasses.Field[Any]]:
    """The options strategy ``name`` accepts, by option name."""
    return {f.name: f for f in dataclasses.fields(get(name).Options)}


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Turn a CLI string (or a TOML value) into the option's declared type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or (origin is not None and type(None) in args):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _coerce(value, a, key)
            except InvalidOptions as exc:
                errors.append(str(exc))
        raise InvalidOptions(errors[0] if errors else f"option {key}: bad value {value!r}")
    if origin is typing.Literal:
        for choice in args:
            if str(choice) == str(value):
                return choice
        raise InvalidOptions(f"option {key}={value!r}; valid: {', '.join(map(str, args))}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise InvalidOptions(f"option {key}={value!r}; valid: true, false")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise InvalidOptions(f"option {key}={value!r} must be a number")
        try:
            if annotation is float:
                return annotation(value)
            return int(str(value), 0) if isinstance(value, str) else int(value)
        except (TypeError, ValueError):
            raise InvalidOptions(f"option {key}={value!r} must be {annotation.__name__}") from None
    if annotation is str:
        return str(value)
    return value


def parse_options(name: str, options: Mapping[str, Any] | None = None) -> Any:
    """Validate and coerce ``options`` into strategy ``name``'s ``Options`` dataclass."""
    cls = get(name)
    fields = option_fields(name)
    hints = typing.get_type_hints(cls.Options)
    options = dict(options or {})
    unknown = sorted(set(options) - set(fields))
    if unknown:
        valid = ", ".join(sorted(fields)) or "(none)"
        raise InvalidOptions(f"unknown option(s) {', '.join(unknown)} for strategy {name!r}; valid: {valid}")
    kwargs = {k: _coerce(v, hints[k], k) for k, v in options.items()}
    try:
        return cls.Options(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InvalidOptions(f"strategy {name!r}: {exc}") from None


def create(name: str, **options: Any) -> AccessStrategy:
    """A new, unprepared strategy ``name`` with ``options``; raises ``StrategyUnavailable`` if it cannot run here."""
    cls = get(name)
    opts = parse_options(name, options)
    ok, reason = cls.availability()
    if not ok:
        raise StrategyUnavailable(f"strategy {name!r} is unavailable here: {reason}")
    return cls(opts)


def availability() -> dict[str, tuple[bool, str]]:
    """Every registered strategy with whether it can run here and why not."""
    return {n: get(n).availability() for n in names()}
