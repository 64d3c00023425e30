"""The registry: names, availability, option validation and coercion."""

from __future__ import annotations

import pytest

from accessbench.kernels import registry
from accessbench.kernels.errors import InvalidOptions


def test_builtin_strategies_registered() -> None:
    assert {"cpu-centric", "device-resident"} <= set(registry.names())
    avail = registry.availability()
    assert avail["cpu-centric"] == (True, "available")
    for ok, reason in avail.values():
        assert isinstance(ok, bool) and reason


def test_unknown_strategy_lists_valid_names() -> None:
    with pytest.raises(InvalidOptions, match="valid: .*cpu-centric"):
        registry.create("no-such-strategy")


def test_unknown_option_lists_valid_options() -> None:
    with pytest.raises(InvalidOptions, match="valid: prefetch, staging, threads"):
        registry.create("cpu-centric", prefetchh=1)


def test_options_are_coerced_from_strings() -> None:
    opts = registry.parse_options("cpu-centric", {"threads": "2", "prefetch": "3", "staging": "pageable"})
    assert (opts.threads, opts.prefetch, opts.staging) == (2, 3, "pageable")
    assert registry.parse_options("cpu-centric", {"threads": "none"}).threads is None


@pytest.mark.parametrize("opts", [{"threads": "x"}, {"staging": "gold"}, {"prefetch": -1}, {"threads": 0}])
def test_bad_option_values(opts: dict) -> None:
    with pytest.raises(InvalidOptions):
        registry.create("cpu-centric", **opts)


def test_capabilities_are_answered_without_building_a_strategy(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from accessbench.kernels import registry
    from accessbench.kernels.base import AccessStrategy

    def refuse(self, *a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("a strategy was built")

    monkeypatch.setattr(AccessStrategy, "__init__", refuse)
    assert registry.capabilities("zero-copy") == {"needs_cuda": True, "supports_ranks": False}
    assert registry.capabilities("cpu-centric") == {"needs_cuda": False, "supports_ranks": False}
    assert registry.capabilities("cached") == {"needs_cuda": False, "supports_ranks": True}
    assert registry.capabilities("cached", backing="zero-copy") == {"needs_cuda": True, "supports_ranks": True}
