"""The asv benchmark bodies, run once each in-process (asv itself spawns a process per benchmark; .ci/asv.sh runs
it). Checks that every benchmark sets up, runs, returns a sensible number, and skips with a reason where it must."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from accessbench.kernels import registry
from benchmarks import bench_access, bench_counters, common


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ACCESSBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        return common.Base().setup_cache()


def test_parameters_cover_every_strategy_and_the_tiny_preset() -> None:
    assert common.STRATEGIES == registry.names()
    if "ACCESSBENCH_ASV_PRESETS" not in __import__("os").environ:
        assert common.PRESETS == ["tiny"]
    for cls in (bench_access.GatherSuite, bench_access.SampleSuite, bench_access.TrainSuite, bench_counters.HitRate,
                bench_counters.ReadAmplification, bench_counters.Energy):
        assert cls.params == [common.STRATEGIES, common.PRESETS]
        assert cls.param_names == ["strategy", "preset"]
    assert bench_access.GatherSuite.track_gather_gbps.unit == "GB/s"
    assert bench_counters.HitRate.track_hit_rate.unit == "hit rate"
    assert bench_counters.ReadAmplification.track_read_amplification.unit == "amplification"
    assert bench_counters.Energy.track_energy_per_gather.unit == "J"


def test_setup_cache_names_existing_stores(paths: dict[str, str]) -> None:
    assert set(paths) == set(common.PRESETS) and (Path(paths["tiny"]) / "manifest.json").is_file()


@pytest.mark.parametrize("strategy", ["cpu-centric", "device-resident"])
def test_access_benchmarks_run(paths: dict[str, str], strategy: str) -> None:
    gather = bench_access.GatherSuite()
    gather.setup(paths, strategy, "tiny")
    try:
        gather.time_gather(paths, strategy, "tiny")
        gbps = gather.track_gather_gbps(paths, strategy, "tiny")
        assert math.isfinite(gbps) and gbps > 0
    finally:
        gather.teardown(paths, strategy, "tiny")
    sample = bench_access.SampleSuite()
    sample.setup(paths, strategy, "tiny")
    try:
        assert sample.track_sampled_edges_per_s(paths, strategy, "tiny") > 0
    finally:
        sample.teardown(paths, strategy, "tiny")
    train = bench_access.TrainSuite()
    train.setup(paths, strategy, "tiny")
    try:
        train.time_train_step(paths, strategy, "tiny")
    finally:
        train.teardown(paths, strategy, "tiny")


def test_unavailable_and_counterless_configurations_skip_with_reason(paths: dict[str, str]) -> None:
    for cls, reason in ((bench_counters.HitRate, "has no cache"),
                        (bench_counters.ReadAmplification, "reads nothing from storage")):
        bench = cls()
        with pytest.raises(NotImplementedError, match=reason):
            bench.setup(paths, "cpu-centric", "tiny")
        bench.teardown(paths, "cpu-centric", "tiny")
    unavailable = [n for n, (ok, _) in registry.availability().items() if not ok]
    for name in unavailable:
        with pytest.raises(NotImplementedError, match=name):
            bench_access.GatherSuite().setup(paths, name, "tiny")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU-only skip")
def test_energy_skips_without_a_gpu(paths: dict[str, str]) -> None:
    bench = bench_counters.Energy()
    with pytest.raises(NotImplementedError, match="no GPU"):
        bench.setup(paths, "cpu-centric", "tiny")
    bench.teardown(paths, "cpu-centric", "tiny")
