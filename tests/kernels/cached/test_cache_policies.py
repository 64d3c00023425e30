"""Cache policies on hand-made traces with known answers, and against small sequential reference implementations."""

from __future__ import annotations

import itertools
from collections import OrderedDict

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from accessbench.kernels.strategies.cached import (
    BeladyPolicy,
    ClockPolicy,
    DenseSlotTable,
    HashSlotTable,
    HybridPolicy,
    LruPolicy,
    Ownership,
    PlanError,
    PolicyConfig,
    VictimIndex,
    initial_ids,
    make_policy,
    make_slot_table,
    owner_union,
    rank_by_importance,
    split_requests,
)

# Silberschatz's reference string: 3 frames give FIFO 15, LRU 12 and OPT 9 page faults.
TEXTBOOK = [7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1]


def _singletons(seq: list[int]) -> list[torch.Tensor]:
    return [torch.tensor([x], dtype=torch.int64) for x in seq]


def _misses(policy, trace: list[torch.Tensor]) -> int:
    return sum(int((~policy.step(b).hit).sum()) for b in trace)


def _check_consistent(policy) -> None:
    """The slot map and the lookup table agree, and nothing exceeds the capacity."""
    ids, slots = policy.contents()
    assert ids.numel() == policy.occupied <= policy.capacity
    assert torch.equal(policy.lookup(ids), slots)
    assert ids.unique().numel() == ids.numel()


def test_lru_textbook_faults() -> None:
    assert _misses(LruPolicy(3, 8), _singletons(TEXTBOOK)) == 12


def test_belady_textbook_faults_demand_min() -> None:
    policy = BeladyPolicy(3, 8, admit="always", prefill=False)
    trace = _singletons(TEXTBOOK)
    policy.plan(trace)
    assert _misses(policy, trace) == 9


def _brute_force_bypass_opt(seq: list[int], capacity: int, *, warm: bool = False) -> int:
    """Fewest misses of any cache of ``capacity`` that may skip caching a miss (exhaustive over cache sets);
    ``warm``: it may start holding any ``capacity`` ids."""
    pages = sorted(set(seq))
    best = {frozenset(c): 0 for k in range(capacity + 1) for c in itertools.combinations(pages, k)} if warm \
        else {frozenset(): 0}
    for x in seq:
        nxt: dict[frozenset, int] = {}
        for held, cost in best.items():
            cost += x not in held
            pool = held | {x}
            for k in range(min(capacity, len(pool)) + 1):  # keep any subset: admit x or not, evict anything
                for keep in itertools.combinations(sorted(pool), k):
                    s = frozenset(keep)
                    nxt[s] = min(nxt.get(s, 1 << 30), cost)
        best = nxt
    return min(best.values())


def test_belady_bypass_is_optimal_on_textbook_trace() -> None:
    trace = _singletons(TEXTBOOK)
    policy = BeladyPolicy(3, 8, prefill=False)
    policy.plan(trace)
    assert _misses(policy, trace) == _brute_force_bypass_opt(TEXTBOOK, 3)
    warm = BeladyPolicy(3, 8)  # prefilled: it may start holding what the plan needs soonest
    warm.plan(trace)
    assert _misses(warm, trace) == _brute_force_bypass_opt(TEXTBOOK, 3, warm=True)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=18), st.integers(1, 3))
def test_belady_bypass_optimal_random(seq: list[int], cap: int) -> None:
    trace = _singletons(seq)
    for prefill in (False, True):
        policy = BeladyPolicy(cap, 7, prefill=prefill)
        policy.plan(trace)
        assert _misses(policy, trace) == _brute_force_bypass_opt(seq, cap, warm=prefill)


def _ref_lru(seq: list[int], cap: int) -> int:
    cache: OrderedDict[int, None] = OrderedDict()
    misses = 0
    for x in seq:
        if x in cache:
            cache.move_to_end(x)
            continue
        misses += 1
        if len(cache) >= cap:
            cache.popitem(last=False)
        cache[x] = None
    return misses


def _ref_clock(seq: list[int], cap: int) -> int:
    """Second chance: hits set the bit; a miss fills a free frame, else the hand clears set bits until a clear one."""
    frames: list[int | None] = [None] * cap
    ref = [False] * cap
    hand = misses = 0
    for x in seq:
        if x in frames:
            ref[frames.index(x)] = True
            continue
        misses += 1
        if None in frames:
            i = frames.index(None)
        else:
            while ref[hand]:
                ref[hand] = False
                hand = (hand + 1) % cap
            i, hand = hand, (hand + 1) % cap
        frames[i], ref[i] = x, True
    return misses


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 12), min_size=1, max_size=60), st.integers(1, 6))
def test_lru_and_clock_match_sequential_references(seq: list[int], cap: int) -> None:
    assert _misses(LruPolicy(cap, 13), _singletons(seq)) == _ref_lru(seq, cap)
    assert _misses(ClockPolicy(cap, 13), _singletons(seq)) == _ref_clock(seq, cap)


def test_clock_textbook_second_chance() -> None:
    assert _misses(ClockPolicy(3, 8), _singletons(TEXTBOOK)) == _ref_clock(TEXTBOOK, 3)


def test_clock_and_lru_differ_where_second_chance_matters() -> None:
    # 1 is reused often: CLOCK's bit saves it where LRU's recency order does not
    seq = [1, 2, 3, 1, 4, 1, 5, 2, 1, 6]
    assert _misses(LruPolicy(3, 8), _singletons(seq)) == _ref_lru(seq, 3)
    assert _misses(ClockPolicy(3, 8), _singletons(seq)) == _ref_clock(seq, 3)


@pytest.mark.parametrize("cls", [LruPolicy, ClockPolicy])
def test_batch_granularity_invariants(cls) -> None:
    g = torch.Generator().manual_seed(3)
    policy = cls(40, 200)
    for _ in range(30):
        ids = torch.randperm(200, generator=g)[: int(torch.randint(1, 90, (1,), generator=g))]
        before = policy.lookup(ids) >= 0
        step = policy.step(ids)
        assert torch.equal(step.hit, before)
        assert not step.hit[step.admitted].any()  # only misses are admitted
        # a batch never evicts its own hits; its admissions are cached now
        assert not torch.isin(step.evicted_ids, ids[step.hit]).any()
        assert torch.equal(policy.lookup(ids[step.admitted]), step.admitted_slots)
        assert (policy.lookup(step.evicted_ids) < 0).all()
        # misses are admitted in batch order until the cache is full of this batch's ids
        n_admit = min(int((~step.hit).sum()), policy.capacity - int(step.hit.sum()))
        assert torch.equal(step.admitted, torch.nonzero(~step.hit).flatten()[:n_admit])
        _check_consistent(policy)


def test_static_policy_caches_top_by_importance() -> None:
    importance = {"degree": torch.tensor([5, 1, 9, 9, 0, 3])}
    init = initial_ids("degree", importance=importance, capacity=3, rank=0, world=1, placement="replicate")
    assert init.tolist() == [2, 3, 0]  # ties by smaller id
    policy = make_policy("degree", 3, 6, importance=importance, initial_ids=init)
    step = policy.step(torch.tensor([0, 1, 2, 4]))
    assert step.hit.tolist() == [True, False, True, False]
    assert step.admitted.numel() == step.evicted_ids.numel() == 0


def test_hybrid_with_overwhelming_prior_is_static() -> None:
    g = torch.Generator().manual_seed(0)
    counts = torch.randperm(300, generator=g) + 1  # distinct scores: the prior alone orders every pair
    cfg = PolicyConfig(hybrid_prior=1e12, presample_batches=300)
    hybrid = make_policy("hybrid", 30, 300, importance={"presample": counts}, config=cfg)
    top = initial_ids("presample", importance={"presample": counts}, capacity=30, rank=0, world=1,
                      placement="replicate")
    static = make_policy("presample", 30, 300, importance={"presample": counts}, initial_ids=top)
    for _ in range(20):
        ids = torch.randperm(300, generator=g)[:50]
        assert torch.equal(hybrid.step(ids).hit, static.step(ids).hit)


def test_hybrid_frequency_without_prior() -> None:
    # no prior: key = batches seen / times needed; ties keep the resident
    policy = HybridPolicy(1, 4, prior=torch.zeros(4), prior_strength=0.0)
    hits = [bool(policy.step(torch.tensor([x])).hit[0]) for x in [1, 2, 1, 1, 2, 2, 2, 2]]
    # t=1: 2/1 vs 2/1 tie (1 stays); t=4: 1 at 5/3 beats 2 at 5/2; t=5: 6/3 tie; t=6: 2 at 7/4 beats 1 at 7/3
    assert hits == [False, False, True, True, False, False, False, True]


def test_hybrid_recency_moves_idle_rows() -> None:
    # resident 0 (needed twice long ago) vs miss 1 (needed twice, once just now); recency < 0 prefers the recent one
    for recency, expect_admit in [(0.0, False), (-1.0, True)]:
        policy = HybridPolicy(1, 2, prior=torch.zeros(2), prior_strength=0.0, recency=recency)
        for x in [0, 0, 1]:
            policy.step(torch.tensor([x]))
        for _ in range(3):
            policy.step(torch.empty(0, dtype=torch.int64))
        step = policy.step(torch.tensor([1]))
        assert bool(step.admitted.numel()) == expect_admit


def test_hybrid_lookahead_keeps_what_the_window_needs() -> None:
    # prior says 0 is hot, but the hinted next batch needs 5: with a window, 5 is admitted over 0
    prior = torch.tensor([0.9, 0.0, 0.0, 0.0, 0.0, 0.1])
    for lookahead, admitted in [(0, False), (2, True)]:
        policy = HybridPolicy(1, 6, prior=prior, prior_strength=100.0, lookahead=lookahead)
        policy.hint([torch.tensor([5]), torch.tensor([5])])
        assert bool(policy.step(torch.tensor([5])).admitted.numel()) == admitted
        assert bool(policy.step(torch.tensor([5])).hit[0]) == admitted
    policy = HybridPolicy(1, 6, prior=prior, lookahead=2)
    policy.hint([torch.tensor([1])])
    with pytest.raises(PlanError, match="hinted"):
        policy.step(torch.tensor([2]))


def test_belady_needs_its_plan() -> None:
    policy = BeladyPolicy(2, 5)
    with pytest.raises(PlanError, match="plan"):
        policy.step(torch.tensor([1]))
    policy.plan([torch.tensor([1, 2])])
    with pytest.raises(PlanError, match="differs"):
        policy.step(torch.tensor([2, 1]))


def test_belady_replan_keeps_useful_rows() -> None:
    policy = BeladyPolicy(2, 10, prefill=False)
    first = [torch.tensor([1, 2]), torch.tensor([1, 2])]
    policy.plan(first)
    assert _misses(policy, first) == 2
    # both rows outlive the first plan (lingering); the new plan keeps 2 and needs a slot for 3 on its first batch
    dropped, _ = policy.plan([torch.tensor([2, 3]), torch.tensor([3])])
    assert dropped.numel() == 0 and policy.occupied == 2
    step = policy.step(torch.tensor([2, 3]))
    assert step.hit.tolist() == [True, False]
    assert step.evicted_ids.tolist() == [1] and policy.lookup(torch.tensor([3])).item() >= 0
    _check_consistent(policy)


def test_belady_superbatches_hand_their_cache_over() -> None:
    policy = BeladyPolicy(2, 10, prefill=False)
    first = [torch.tensor([1, 2]), torch.tensor([1, 2])]
    policy.plan(first)
    _misses(policy, first)
    second = [torch.tensor([1]), torch.tensor([2])]
    policy.plan(second)
    assert _misses(policy, second) == 0


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.lists(st.integers(0, 500), max_size=40)), max_size=30))
def test_hash_table_matches_dense(ops) -> None:
    dense, hashed = DenseSlotTable(501, device=torch.device("cpu")), HashSlotTable(64, device=torch.device("cpu"))
    present: dict[int, int] = {}
    next_slot = 0
    for insert, ids in ops:
        ids = list(dict.fromkeys(ids))
        if insert:
            new = [i for i in ids if i not in present][: 64 - len(present)]
            slots = list(range(next_slot, next_slot + len(new)))
            next_slot += len(new)
            present.update(zip(new, slots))
            for t in (dense, hashed):
                t.insert(torch.tensor(new, dtype=torch.int64), torch.tensor(slots, dtype=torch.int64))
        else:
            gone = [i for i in ids if i in present]
            for i in gone:
                del present[i]
            for t in (dense, hashed):
                t.remove(torch.tensor(gone, dtype=torch.int64))
        probe = torch.arange(501)
        assert torch.equal(dense.lookup(probe), hashed.lookup(probe))


def test_auto_lookup_picks_hash_when_dense_would_not_fit() -> None:
    cpu = torch.device("cpu")
    assert make_slot_table("auto", num_nodes=1000, capacity=100, budget_bytes=100 * 512, device=cpu).kind == "dense"
    assert make_slot_table("auto", num_nodes=10**6, capacity=10, budget_bytes=10 * 16, device=cpu).kind == "hash"


def test_policies_run_with_hashed_lookup() -> None:
    g = torch.Generator().manual_seed(1)
    trace = [torch.randperm(400, generator=g)[:60] for _ in range(15)]
    for name in ("lru", "clock", "hybrid"):
        imp = {"presample": torch.randint(0, 5, (400,), generator=g)}
        a = make_policy(name, 50, 400, importance=imp)
        b = make_policy(name, 50, 400, importance=imp, table=HashSlotTable(50, device=torch.device("cpu")))
        for ids in trace:
            assert torch.equal(a.step(ids).hit, b.step(ids).hit)
        _check_consistent(b)


def test_victim_index_is_fifo() -> None:
    v = VictimIndex(3, 10)
    v.push(torch.tensor([1, 2]))
    v.push(torch.tensor([3, 4]))  # 1 is overwritten
    assert (v.lookup(torch.tensor([1, 2, 3, 4])) >= 0).tolist() == [False, True, True, True]
    v.push(torch.tensor([2]))  # 2 moves to the newest entry; its old entry dies
    v.push(torch.tensor([5]))
    assert (v.lookup(torch.tensor([2, 3, 4, 5])) >= 0).tolist() == [True, False, True, True]
    keep, _ = v.push(torch.arange(5, 10))  # more than fit: the last three stay
    assert keep.tolist() == [2, 3, 4] and v.size == 3
    assert (v.lookup(torch.arange(10)) >= 0).nonzero().flatten().tolist() == [7, 8, 9]


def test_partition_deals_the_hot_set_round_robin() -> None:
    imp = {"degree": torch.tensor([0, 9, 8, 7, 6, 5, 4, 3])}
    shards = [initial_ids("degree", importance=imp, capacity=2, rank=r, world=2, placement="partition")
              for r in range(2)]
    assert shards[0].tolist() == [1, 3] and shards[1].tolist() == [2, 4]
    own = Ownership.for_policy("degree", world=2, num_nodes=8, importance=imp, capacity=2)
    assert own.owners(torch.arange(8)).tolist() == [-1, 0, 1, 0, 1, -1, -1, -1]
    assert Ownership.for_policy("lru", world=3, num_nodes=8, importance={}, capacity=2).owners(
        torch.tensor([4, 5, 6])).tolist() == [1, 2, 0]


def test_routing_keeps_batch_order_per_owner() -> None:
    owners = torch.tensor([1, -1, 0, 1, 0])
    order, counts = split_requests(owners, 2)
    assert order.tolist() == [2, 4, 0, 3] and counts.tolist() == [2, 2]
    union, inv = owner_union(torch.tensor([7, 3, 7, 9]))
    assert union.tolist() == [7, 3, 9] and inv.tolist() == [0, 1, 0, 2]


def test_rank_by_importance_is_stable() -> None:
    assert rank_by_importance(torch.tensor([1, 3, 3, 0, 3])).tolist() == [1, 2, 4, 0, 3]
