"""The ``AccessStrategy`` interface: how a strategy places a graph, samples it and gathers feature rows."""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from accessbench import schema

from .errors import InvalidIds
from .types import AccessStats, GraphData, SampledBatch

__all__ = ["PHASES", "AccessStrategy", "LoadedBatch", "NoOptions", "PhaseHook", "check_ids"]

#: Phase names shared by strategies, telemetry windows, NVTX ranges, result columns and plot labels.
PHASES: tuple[str, ...] = schema.PHASES

#: A callable that wraps a phase (NVTX range, energy meter...); it must not time it (the strategy does).
PhaseHook = Callable[[str], AbstractContextManager[Any]]


@dataclass(frozen=True)
class NoOptions:
    """Options of a strategy that takes none."""


@dataclass
class LoadedBatch:
    """A sampled batch with its features on the compute device and the seconds each phase took for it."""

    batch: SampledBatch
    features: torch.Tensor
    phase_s: dict[str, float] = field(default_factory=dict)
    overlapped: bool = False  # True when the phases ran in the background, hidden behind compute


ID_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def check_id_tensor(ids: torch.Tensor) -> None:
    """Raise ``InvalidIds`` unless ``ids`` is a 1-D tensor of an integer type (values are not checked; no sync)."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1:
        raise InvalidIds("ids must be a 1-D integer tensor")
    if ids.dtype not in ID_DTYPES:
        raise InvalidIds(f"ids must be integers, got {ids.dtype}")


def check_ids(ids: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """The suite's one id validator: a 1-D integer tensor with values in ``[0, num_nodes)``; returns it as int64
    (same device). One host synchronisation (``aminmax``) on a device tensor."""
    check_id_tensor(ids)
    if ids.numel():
        lo, hi = torch.stack(torch.aminmax(ids)).tolist()
        if lo < 0 or hi >= num_nodes:
            raise InvalidIds(f"ids out of range: min {lo}, max {hi}, valid [0, {num_nodes})")
    return ids.to(torch.int64)


class AccessStrategy(abc.ABC):
    """A way for the compute device to reach graph topology and feature rows.

    Lifecycle: ``prepare`` once, then any number of ``sample``/``gather``/``load`` calls, then ``close``
    (also through ``with``). Every ``gather`` is exact: ``torch.equal(gather(ids).cpu(), features[ids])``.
    Subclasses set ``name`` and ``Options`` (a frozen dataclass) and register with ``accessbench.kernels.registry.register``.
    """

    name: ClassVar[str] = "abstract"
    Options: ClassVar[type] = NoOptions
    #: True for strategies that sample and gather in host memory and copy rows to a CUDA device as a separate phase
    samples_on_host: ClassVar[bool] = False

    def __init__(self, options: Any | None = None) -> None:
        self.options = options if options is not None else self.Options()
        self.graph: GraphData | None = None
        self.device: torch.device = torch.device("cpu")
        self.phase_hook: PhaseHook = lambda name: contextlib.nullcontext()
        self._stats = AccessStats()
        self._tls = threading.local()
        self._closed = False

    # ---- capabilities -------------------------------------------------------------------------------------------
    #: Class-level capabilities (``capabilities`` answers them for given options without building a strategy).
    NEEDS_CUDA: ClassVar[bool] = False
    SUPPORTS_RANKS: ClassVar[bool] = False

    @classmethod
    def capabilities(cls, options: Any | None = None) -> dict[str, bool]:
        """``needs_cuda`` and ``supports_ranks`` for ``options`` (an ``Options`` instance or None), nothing built."""
        return {"needs_cuda": cls.NEEDS_CUDA, "supports_ranks": cls.SUPPORTS_RANKS}

    @property
    def needs_cuda(self) -> bool:
        """True when the strategy cannot run without a CUDA device."""
        return type(self).capabilities(self.options)["needs_cuda"]

    @property
    def supports_ranks(self) -> bool:
        """True when several ranks (torch.distributed) can share the strategy's placement."""
        return type(self).capabilities(self.options)["supports_ranks"]

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """Whether this strategy can run on this machine, and why not (checks only, imports nothing heavy)."""
        return True, "available"

    # ---- lifecycle ----------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def prepare(self, graph: GraphData, device: torch.device) -> None:
        """Place topology and features where the strategy keeps them; ``device`` is the compute device."""

    @abc.abstractmethod
    def sample(self, seeds: torch.Tensor, fanouts: Sequence[int], *, generator: torch.Generator) -> SampledBatch:
        """Uniform neighbour sampling from ``seeds`` (int64 ``[B]``), ``fanouts[k]`` neighbours per node at hop k.

        ``generator`` must live on the device the strategy samples on (``sample_device``).
        """

    @abc.abstractmethod
    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        """Feature rows ``features[ids]`` as ``[len(ids), D]`` on the compute device, exact, in the caller's order."""

    def close(self) -> None:
        """Release pinned registrations, files, threads and device memory. Safe to call twice."""
        self._closed = True

    @property
    def sample_device(self) -> torch.device:
        """The device sampling runs on (the generator passed to ``sample`` must live there)."""
        return torch.device("cpu") if self.samples_on_host else self.device

    @property
    def has_transfer_phase(self) -> bool:
        """True when gathered rows cross a host-to-device link as a separate phase."""
        return self.samples_on_host and self.device.type == "cuda"

    # ---- the measured window -----------------------------------------------------------------------------------
    def before_measure(self) -> None:
        """Called after the warm-up, just before the measured window: size buffers now, never in a measured step."""

    def measure_notes(self) -> list[str]:
        """Notes for the record about the measured window (e.g. an allocation that landed inside it)."""
        return []

    # ---- ids ----------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def trusting_ids(self) -> Iterator[None]:
        """Inside the block, on this thread, ``valid_ids`` checks shape and type only: for ids this strategy's own
        sampler produced (in range by construction), so no device sync is spent re-checking them."""
        prev = getattr(self._tls, "trusted", False)
        self._tls.trusted = True
        try:
            yield
        finally:
            self._tls.trusted = prev

    def ids_trusted(self) -> bool:
        """Whether this thread is inside ``trusting_ids``."""
        return bool(getattr(self._tls, "trusted", False))

    def valid_ids(self, ids: torch.Tensor, num_nodes: int) -> torch.Tensor:
        """``check_ids`` (one sync), or only the shape and type check inside ``trusting_ids``; int64 ids."""
        if self.ids_trusted():
            check_id_tensor(ids)
            return ids.to(torch.int64)
        return check_ids(ids, num_nodes)

    # ---- pipelined loading --------------------------------------------------------------------------------------
    def load(
        self, seed_batches: Iterable[torch.Tensor], fanouts: Sequence[int], *, generator: torch.Generator
    ) -> Iterator[LoadedBatch]:
        """Sample and gather each batch of seeds in turn; strategies that prefetch override this."""
        for seeds in seed_batches:
            with self.collect_phases() as phase_s:
                with self.phase("sample"):
                    batch = self.sample(seeds, fanouts, generator=generator)
                with self.trusting_ids():  # the sampler's own ids: no range re-check
                    feats = self.gather(batch.node_ids)
                batch = self.blocks_to_device(batch)
            yield LoadedBatch(batch, feats, phase_s)

    def blocks_to_device(self, batch: SampledBatch, *, stats: AccessStats | None = None) -> SampledBatch:
        """Move a batch sampled on ``sample_device`` to the compute device (timed as ``transfer``, counted h2d
        into ``stats``, default the strategy's own counters)."""
        if batch.node_ids.device == self.device:
            return batch
        with self.phase("transfer"):
            blocks = tuple(
                dataclasses.replace(b, edge_index=b.edge_index.to(self.device, non_blocking=True))
                for b in batch.blocks
            )
            moved = SampledBatch(
                seeds=batch.seeds.to(self.device, non_blocking=True),
                node_ids=batch.node_ids.to(self.device, non_blocking=True),
                blocks=blocks,
            )
        if self.device.type == "cuda" and batch.node_ids.device.type == "cpu":
            nbytes = sum(b.edge_index.numel() for b in batch.blocks) * 8 + (batch.seeds.numel() + batch.node_ids.numel()) * 8
            (stats if stats is not None else self._stats).add_bytes("h2d", nbytes)
        return moved

    # ---- counters -----------------------------------------------------------------------------------------------
    def stats(self) -> AccessStats:
        """A copy of the counters since the last ``reset_stats``."""
        return dataclasses.replace(
            self._stats,
            bytes_by_tier=dict(self._stats.bytes_by_tier),
            hits=dict(self._stats.hits),
            misses=dict(self._stats.misses),
            extras=dict(self._stats.extras),
        )

    def reset_stats(self) -> None:
        """Zero the counters."""
        self._stats = AccessStats()

    # ---- phase timing -------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def collect_phases(self) -> Iterator[dict[str, float]]:
        """Collect the seconds of every ``phase`` entered by this thread inside the block into the yielded dict."""
        previous = getattr(self._tls, "sink", None)
        sink: dict[str, float] = {}
        self._tls.sink = sink
        try:
            yield sink
        finally:
            self._tls.sink = previous

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time one phase: the current stream is synchronised at both edges, the hook wraps it."""
        sink = getattr(self._tls, "sink", None)
        self._sync_current_stream()
        start = time.perf_counter()
        with self.phase_hook(name):
            yield
            self._sync_current_stream()
        if sink is not None:
            sink[name] = sink.get(name, 0.0) + time.perf_counter() - start

    def _sync_current_stream(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()

    # ---- helpers ------------------------------------------------------------------------------------------------
    def _require_prepared(self) -> GraphData:
        if self.graph is None:
            raise RuntimeError(f"{self.name}: call prepare(graph, device) first")
        if self._closed:
            raise RuntimeError(f"{self.name}: strategy is closed")
        return self.graph

    def __enter__(self) -> AccessStrategy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options})"
