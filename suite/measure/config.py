"""The configuration type: one point of a sweep (strategy x options x workload x mode x device x ranks), and its
JSON form (what the runner hands a worker process; the key survives the round trip)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from accessbench.workloads.config import Workload
from accessbench.workloads.generate import GraphSpec

from .records import Record, config_key

__all__ = ["Config", "config_from_dict", "config_to_dict", "record_from_dict"]


@dataclass(frozen=True)
class Config:
    """One point of a sweep."""

    strategy: str
    workload: Workload
    mode: str
    device: str = "auto"
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    ranks: int = 1
    #: Cap the worker's memory (page cache included) at this many bytes (a memory cgroup; ``runner.memcap``).
    memory_cap_bytes: int | None = None
    #: The study that asked for this configuration (a label on the record, not part of the key).
    study: str | None = None

    @property
    def key(self) -> str:
        """The configuration's stable key (see ``records.config_key``; a memory cap is part of it)."""
        extra = {"memory_cap_bytes": self.memory_cap_bytes} if self.memory_cap_bytes else None
        return config_key(self.strategy, self.options, self.workload.identity(), self.mode, self.device, self.ranks,
                          extra=extra)

    def new_record(self, run_id: str, **fields: Any) -> Record:
        """A fresh record of this configuration: its identity and labels filled, then ``fields``."""
        return Record(run_id=run_id, config_key=self.key, strategy=self.strategy, options=dict(self.options),
                      workload=self.workload.name, mode=self.mode, device=self.device, ranks=self.ranks,
                      study=self.study, memory_cap_bytes=self.memory_cap_bytes, **fields)


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """A JSON-ready form of a configuration (``config_from_dict`` inverts it; the key survives the round trip)."""
    return {"strategy": cfg.strategy, "workload": dataclasses.asdict(cfg.workload), "mode": cfg.mode,
            "device": cfg.device, "options": dict(cfg.options), "ranks": cfg.ranks,
            "memory_cap_bytes": cfg.memory_cap_bytes, "study": cfg.study}


def config_from_dict(data: dict[str, Any]) -> Config:
    """Inverse of ``config_to_dict``."""
    wl = dict(data["workload"])
    if wl.get("graph") is not None:
        wl["graph"] = GraphSpec(**wl["graph"])
    wl["fanouts"] = tuple(wl["fanouts"])
    return Config(strategy=data["strategy"], workload=Workload(**wl), mode=data["mode"], device=data["device"],
                  options=dict(data["options"]), ranks=int(data["ranks"]),
                  memory_cap_bytes=data.get("memory_cap_bytes"), study=data.get("study"))


def record_from_dict(data: dict[str, Any]) -> Record:
    """A ``Record`` from a parsed JSON row (fields this version does not know are dropped)."""
    names = {f.name for f in dataclasses.fields(Record)}
    return Record(**{k: v for k, v in data.items() if k in names})

