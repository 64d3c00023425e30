"""Device feature caches: lookup tables, policies (static, dynamic, look-ahead), the victim buffer and the placement
of caches across ranks. Shared by the ``cached`` strategy and the simulator (``accessbench.suite.sim.simulator``)."""

from .importance import degree_importance, parse_fanouts, presample_importance, rank_by_importance
from .placement import PLACEMENTS, Ownership, initial_ids, owner_union, split_requests
from .policies import (
    POLICIES,
    STATIC_POLICIES,
    BeladyPolicy,
    CachePolicy,
    ClockPolicy,
    DegreePolicy,
    HybridPolicy,
    LruPolicy,
    PlanError,
    PolicyConfig,
    PolicyStep,
    PresamplePolicy,
    StaticPolicy,
    make_policy,
)
from .table import DenseSlotTable, HashSlotTable, SlotTable, make_slot_table
from .victim import VictimBuffer, VictimIndex

__all__ = [
    "PLACEMENTS",
    "POLICIES",
    "STATIC_POLICIES",
    "BeladyPolicy",
    "CachePolicy",
    "ClockPolicy",
    "DegreePolicy",
    "DenseSlotTable",
    "HashSlotTable",
    "HybridPolicy",
    "LruPolicy",
    "Ownership",
    "PlanError",
    "PolicyConfig",
    "PolicyStep",
    "PresamplePolicy",
    "SlotTable",
    "StaticPolicy",
    "VictimBuffer",
    "VictimIndex",
    "degree_importance",
    "initial_ids",
    "make_policy",
    "make_slot_table",
    "owner_union",
    "parse_fanouts",
    "presample_importance",
    "rank_by_importance",
    "split_requests",
]

from . import strategy as strategy  # registers ``cached``
