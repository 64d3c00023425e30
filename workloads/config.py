"""Workloads: frozen dataclasses loaded from TOML presets (``workloads/presets/``) or a user's TOML file."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from accessbench.kernels.errors import AccessBenchError
from accessbench.kernels.sampling import validate_fanouts

from .generate import GraphSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["MODES", "PRESET_DIR", "Workload", "WorkloadError", "cache_dir", "load_workload", "preset_names"]

PRESET_DIR = Path(__file__).parent / "presets"
MODES = ("gather", "sample", "train")
Mode = Literal["gather", "sample", "train"]


class WorkloadError(AccessBenchError):
    """A preset or workload file that is missing or malformed."""


@dataclass(frozen=True)
class Workload:
    """One workload: the graph, how batches are drawn, the model, and how many steps to warm up and measure.

    ``graph`` is a synthetic ``GraphSpec`` unless ``store`` names an existing store directory.
    ``gather_ids``: ids per step in ``gather`` mode (drawn uniformly at random, fresh each step).
    ``memory_budget_bytes``: cap for strategies that hold caches or buffers (None: no cap).
    ``options``: per-strategy option overrides, ``{strategy: {option: value}}``.
    ``cores``: CPUs the measuring worker is pinned to, with one torch intra-op thread each (None: one thread per
    free core, not pinned; suite/runner/placement.py).
    """

    name: str
    graph: GraphSpec | None = None
    store: str | None = None
    mode: Mode = "train"
    batch_size: int = 1024
    fanouts: tuple[int, ...] = (10, 5)
    model: str = "sage"
    hidden: int = 128
    warmup_steps: int = 3
    steps: int = 20
    seed: int = 0
    gather_ids: int = 100_000
    memory_budget_bytes: int | None = None
    cores: int | None = None
    description: str = ""
    options: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if (self.graph is None) == (self.store is None):
            raise WorkloadError(f"workload {self.name!r}: give exactly one of [graph] or store")
        if self.mode not in MODES:
            raise WorkloadError(f"workload {self.name!r}: mode {self.mode!r}; valid: {', '.join(MODES)}")
        try:
            validate_fanouts(self.fanouts)
        except ValueError as exc:
            raise WorkloadError(f"workload {self.name!r}: {exc}") from None
        from .models import MODELS

        if self.model not in MODELS:
            raise WorkloadError(f"workload {self.name!r}: model {self.model!r}; valid: {', '.join(MODELS)}")
        for key in ("batch_size", "steps", "gather_ids", "hidden"):
            if getattr(self, key) < 1:
                raise WorkloadError(f"workload {self.name!r}: {key} must be >= 1")
        if self.warmup_steps < 0:
            raise WorkloadError(f"workload {self.name!r}: warmup_steps must be >= 0")
        if self.cores is not None and self.cores < 1:
            raise WorkloadError(f"workload {self.name!r}: cores must be >= 1")

    def with_overrides(self, **changes: Any) -> Workload:
        """A copy with some fields replaced (None values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def identity(self) -> dict[str, Any]:
        """The fields that define what is measured (used in config keys, options included); not the description."""
        d = dataclasses.asdict(self)
        d.pop("description", None)
        if d.get("cores") is None:  # unset: keys stay those of workloads written before the field existed
            d.pop("cores", None)
        return d


#: section -> key -> the type its value must have ("int" never takes a float or a bool; "float" takes an int)
_SECTIONS: dict[str, dict[str, str]] = {
    "graph": {"num_nodes": "int", "avg_degree": "float", "feat_dim": "int", "dtype": "str", "alpha": "float",
              "num_classes": "int", "train_fraction": "float", "seed": "int"},
    "sampling": {"batch_size": "int", "fanouts": "int list"},
    "model": {"name": "str", "hidden": "int"},
    "run": {"warmup_steps": "int", "steps": "int", "seed": "int", "cores": "int"},
    "gather": {"ids": "int"},
}
_TOP: dict[str, str] = {"name": "str", "description": "str", "mode": "str", "store": "str",
                        "memory_budget_bytes": "int"}


def _typed(where: str, value: Any, kind: str) -> Any:
    """``value`` if it has type ``kind``, else ``WorkloadError`` naming ``where``, the type and the value."""
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "int list": isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
    }[kind]
    if not ok:
        what = {"int": "an integer", "float": "a number", "str": "a string", "int list": "a list of integers"}[kind]
        raise WorkloadError(f"{where} must be {what}, got {value!r}")
    return value


def _section(table: dict[str, Any], name: str, origin: str) -> dict[str, Any]:
    """The ``[name]`` table, checked: a table, only known keys, each value of its type."""
    sec = table.get(name, {})
    if not isinstance(sec, dict):
        raise WorkloadError(f"{origin}: {name} must be a table ([{name}] with keys {', '.join(_SECTIONS[name])}), "
                            f"got {sec!r}")
    unknown = sorted(set(sec) - set(_SECTIONS[name]))
    if unknown:
        raise WorkloadError(f"{origin}: unknown key(s) {', '.join(unknown)} in [{name}]; valid: "
                            f"{', '.join(_SECTIONS[name])}")
    return {k: _typed(f"{origin}: [{name}] {k}", v, _SECTIONS[name][k]) for k, v in sec.items()}


def _from_table(name: str, table: dict[str, Any], origin: str) -> Workload:
    known = {*_TOP, *_SECTIONS, "options"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise WorkloadError(f"{origin}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    for key, kind in _TOP.items():
        if key in table:
            _typed(f"{origin}: {key}", table[key], kind)
    sections = {sec: _section(table, sec, origin) for sec in _SECTIONS}
    options = table.get("options", {})
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise WorkloadError(f"{origin}: options must be tables [options.<strategy>] of option = value, got "
                            f"{options!r}")
    try:
        graph = GraphSpec(**sections["graph"]) if "graph" in table else None
        sampling, model, run, gather = (sections[k] for k in ("sampling", "model", "run", "gather"))
        store = table.get("store")
        if store is not None and not os.path.isabs(store):
            store = str((Path(origin).parent / store).resolve()) if Path(origin).is_file() else store
        return Workload(
            name=table.get("name", name),
            description=table.get("description", ""),
            graph=graph,
            store=store,
            mode=table.get("mode", "train"),
            batch_size=sampling.get("batch_size", 1024),
            fanouts=tuple(sampling.get("fanouts", (10, 5))),
            model=model.get("name", "sage"),
            hidden=model.get("hidden", 128),
            warmup_steps=run.get("warmup_steps", 3),
            steps=run.get("steps", 20),
            seed=run.get("seed", 0),
            cores=run.get("cores"),
            gather_ids=gather.get("ids", 100_000),
            memory_budget_bytes=table.get("memory_budget_bytes"),
            options=dict(options),
        )
    except WorkloadError:
        raise
    except (TypeError, ValueError) as exc:
        raise WorkloadError(f"{origin}: {exc}") from None


def preset_names() -> list[str]:
    """Names of the bundled presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def load_workload(name_or_path: str) -> Workload:
    """A bundled preset by name, or a workload TOML file by path."""
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise WorkloadError(f"workload file {name_or_path} does not exist")
        origin = str(path)
        name = path.stem
    else:
        path = PRESET_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise WorkloadError(f"unknown preset {name_or_path!r}; valid: {', '.join(preset_names())} (or a .toml file)")
        origin, name = str(path), name_or_path
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise WorkloadError(f"{origin}: malformed TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"{origin}: unreadable ({exc})") from None
    return _from_table(name, table, origin)


def cache_dir() -> Path:
    """Where generated graph stores are cached: ``$ACCESSBENCH_CACHE`` or ``~/.cache/accessbench``."""
    return Path(os.environ.get("ACCESSBENCH_CACHE", Path.home() / ".cache" / "accessbench"))


def spec_key(spec: GraphSpec) -> str:
    """A stable short hash of a graph spec (the name of its cached store)."""
    blob = json.dumps(dataclasses.asdict(spec), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
