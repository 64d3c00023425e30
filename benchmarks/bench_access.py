"""Time, throughput and peak memory of gather, sample and one training step, per strategy and preset."""

from __future__ import annotations

import itertools

import torch

from accessbench.kernels.device import synchronize
from accessbench.workloads.batches import random_ids, seed_batches
from accessbench.workloads.models import build_model, train_step
from benchmarks.common import ID_SETS, Base, median_seconds


class GatherSuite(Base):
    """Gathers of ``gather_ids`` uniformly random rows (a fresh id set each call, with repeats, unsorted):
    time per call, GB/s delivered, peak memory."""

    def after_setup(self) -> None:
        gen = torch.Generator().manual_seed(self.workload.seed)
        self.id_sets = itertools.cycle(
            [random_ids(self.graph.num_nodes, self.workload.gather_ids, generator=gen) for _ in range(ID_SETS)])
        self.nbytes = self.workload.gather_ids * self.graph.row_bytes

    def _gather(self) -> None:
        self.strategy.gather(next(self.id_sets))
        synchronize(self.device)

    def time_gather(self, *_: object) -> None:
        self._gather()

    def peakmem_gather(self, *_: object) -> None:
        self._gather()

    def track_gather_gbps(self, *_: object) -> float:
        return self.nbytes / median_seconds(self._gather, self.device, repeats=10) / 1e9

    track_gather_gbps.unit = "GB/s"  # type: ignore[attr-defined]


class SampleSuite(Base):
    """Neighbour sampling of one batch of seeds with the preset's fanouts, on the strategy's own topology."""

    def after_setup(self) -> None:
        wl = self.workload
        self.seeds = itertools.cycle(list(seed_batches(self.graph, wl.batch_size, seed=wl.seed, steps=8)))
        self.gen = torch.Generator(device=self.strategy.sample_device).manual_seed(wl.seed)

    def _sample(self) -> int:
        batch = self.strategy.sample(next(self.seeds), self.workload.fanouts, generator=self.gen)
        synchronize(self.device)
        return batch.num_edges

    def time_sample(self, *_: object) -> None:
        self._sample()

    def track_sampled_edges_per_s(self, *_: object) -> float:
        edges = self._sample()
        return edges / median_seconds(self._sample, self.device, repeats=10)

    track_sampled_edges_per_s.unit = "edges/s"  # type: ignore[attr-defined]


class TrainSuite(Base):
    """One training step: load a batch (sample, gather, transfer), forward, backward, optimiser step."""

    def after_setup(self) -> None:
        wl, g = self.workload, self.graph
        assert g.labels is not None
        torch.manual_seed(wl.seed)
        self.model = build_model(wl.model, in_dim=g.feat_dim, hidden=wl.hidden,
                                 out_dim=g.num_classes or int(g.labels.max()) + 1,
                                 num_layers=len(wl.fanouts)).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.labels = g.labels.to(self.device)
        gen = torch.Generator(device=self.strategy.sample_device).manual_seed(wl.seed)
        seeds = itertools.cycle(list(seed_batches(g, wl.batch_size, seed=wl.seed, steps=8)))
        self.loader = self.strategy.load(seeds, wl.fanouts, generator=gen)

    def _step(self) -> None:
        loaded = next(self.loader)
        train_step(self.model, self.opt, loaded.features, loaded.batch, self.labels)
        synchronize(self.device)

    def time_train_step(self, *_: object) -> None:
        self._step()

    def peakmem_train_step(self, *_: object) -> None:
        self._step()

    def teardown(self, paths: dict[str, str], strategy: str, preset: str) -> None:
        loader = getattr(self, "loader", None)
        if loader is not None:
            loader.close()
        super().teardown(paths, strategy, preset)
