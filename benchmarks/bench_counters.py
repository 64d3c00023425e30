"""What a strategy's counters and the GPU's energy meter say over a few training batches: hit rate, read
amplification, energy per step. Strategies without the counter (no cache, no disk tier) or machines without the
meter (no NVML GPU) are skipped with the reason."""

from __future__ import annotations

import itertools
import time
from typing import Any

import torch

from accessbench.kernels.device import synchronize
from accessbench.workloads.batches import random_ids, seed_batches
from benchmarks.common import ID_SETS, Base

LOAD_BATCHES = 8


class _Counters(Base):
    def after_setup(self) -> None:
        wl = self.workload
        self.seed_list = list(seed_batches(self.graph, wl.batch_size, seed=wl.seed, steps=LOAD_BATCHES))
        self.check(self.load_stats())

    def check(self, stats: Any) -> None:
        """Raise NotImplementedError when the strategy has no such counter."""

    def load_stats(self) -> Any:
        """The strategy's counters over ``LOAD_BATCHES`` loaded batches (sample + gather + transfer)."""
        gen = torch.Generator(device=self.strategy.sample_device).manual_seed(self.workload.seed)
        self.strategy.reset_stats()
        loader = self.strategy.load(iter(self.seed_list), self.workload.fanouts, generator=gen)
        try:
            for _ in loader:
                pass
        finally:
            loader.close()  # type: ignore[attr-defined]
        synchronize(self.device)
        return self.strategy.stats()


class HitRate(_Counters):
    """Fraction of requested rows served by a cache tier."""

    def check(self, stats: Any) -> None:
        if stats.hit_rate() is None:
            raise NotImplementedError(f"{self.strategy.name} has no cache")

    def track_hit_rate(self, *_: object) -> float:
        return float(self.load_stats().hit_rate())

    track_hit_rate.unit = "hit rate"  # type: ignore[attr-defined]


class ReadAmplification(_Counters):
    """Bytes read from storage / feature bytes needed."""

    def check(self, stats: Any) -> None:
        if stats.bytes_needed == 0 or "disk" not in stats.bytes_by_tier:
            raise NotImplementedError(f"{self.strategy.name} reads nothing from storage")

    def track_read_amplification(self, *_: object) -> float:
        stats = self.load_stats()
        return stats.bytes_by_tier["disk"] / stats.bytes_needed

    track_read_amplification.unit = "amplification"  # type: ignore[attr-defined]


class Energy(Base):
    """GPU energy per gather call from NVML's total-energy counter, over a window of at least one second."""

    def after_setup(self) -> None:
        if self.device.type != "cuda":
            raise NotImplementedError("no GPU: energy is measured with NVML on a CUDA device")
        try:
            import pynvml
            pynvml.nvmlInit()
            self.nvml = pynvml
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(self.device.index or 0)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        except Exception as exc:  # noqa: BLE001 - any NVML failure means "cannot measure here"
            raise NotImplementedError(f"NVML energy counter unavailable: {exc}") from None
        gen = torch.Generator().manual_seed(self.workload.seed)
        self.id_sets = itertools.cycle(
            [random_ids(self.graph.num_nodes, self.workload.gather_ids, generator=gen) for _ in range(ID_SETS)])

    def track_energy_per_gather(self, *_: object) -> float:
        synchronize(self.device)
        start_mj = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        t0, calls = time.perf_counter(), 0
        while time.perf_counter() - t0 < 1.0 or calls < 10:
            self.strategy.gather(next(self.id_sets))
            calls += 1
        synchronize(self.device)
        return (self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) - start_mj) / 1e3 / calls

    track_energy_per_gather.unit = "J"  # type: ignore[attr-defined]

    def teardown(self, paths: dict[str, str], strategy: str, preset: str) -> None:
        nvml = getattr(self, "nvml", None)
        if nvml is not None:
            nvml.nvmlShutdown()
        super().teardown(paths, strategy, preset)
