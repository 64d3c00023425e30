"""Several ranks under torchrun: the process group, the rank rule for seeds, and the runner's small collectives.

``accessbench run`` launched by ``torchrun --nproc_per_node=N`` (``WORLD_SIZE`` > 1 in the environment) opens a
``RankSession``: the default process group (NCCL on CUDA devices, each rank on ``cuda:LOCAL_RANK``; gloo on the CPU)
plus a gloo group for the runner's own control messages (which configuration next, each rank's record), so control
never queues behind the strategies' data collectives. The rank rule lives here once: global seed batch ``j`` goes to
rank ``batch_rank(j, world) = j % world``, and rank ``r`` samples with a generator seeded ``rank_seed(seed, r) =
seed + r`` (``accessbench trace`` records with the same helpers). Without a session every function here is the
identity of a single-process run.
"""

from __future__ import annotations

import datetime
import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from accessbench.kernels.errors import AccessBenchError

__all__ = ["RankError", "RankSession", "all_true", "batch_rank", "env_world_size", "launched", "rank_and_world",
           "rank_batches", "rank_seed", "wrap_model"]

T = TypeVar("T")

#: The session of this process (set by ``RankSession.start``, cleared by ``close``).
_SESSION: RankSession | None = None


class RankError(AccessBenchError):
    """Several ranks asked for in a way that cannot work (no process group, a device per rank missing, ...)."""


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (set by torchrun), 1 when absent."""
    text = os.environ.get("WORLD_SIZE", "").strip()
    if not text:
        return 1
    try:
        world = int(text)
    except ValueError:
        raise RankError(f"WORLD_SIZE={text!r} in the environment is not an integer") from None
    if world < 1:
        raise RankError(f"WORLD_SIZE={world} in the environment must be >= 1")
    return world


def launched() -> bool:
    """True when this process is one of several ranks started by torchrun."""
    return env_world_size() > 1


# ---- the rank rule ------------------------------------------------------------------------------------------------
def batch_rank(index: int, world: int) -> int:
    """The rank that trains on global seed batch ``index`` when ``world`` ranks share one seed stream."""
    return index % world


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s sampling (and gather-mode id) generator."""
    return seed + rank


def rank_batches(batches: Iterable[T], rank: int, world: int) -> Iterator[T]:
    """The items of the global stream ``batches`` that ``batch_rank`` gives to ``rank`` (all of them for one rank)."""
    if world == 1:
        return iter(batches)
    return itertools.islice(batches, rank, None, world)  # exactly the j with batch_rank(j, world) == rank


def rank_and_world(ranks: int) -> tuple[int, int]:
    """This process's (rank, world) for a configuration of ``ranks`` ranks; (0, 1) for one rank."""
    if ranks == 1:
        return 0, 1
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RankError(f"the configuration has {ranks} ranks but no process group is initialised: launch it with "
                        f"torchrun --nproc_per_node={ranks}")
    world = dist.get_world_size()
    if world != ranks:
        raise RankError(f"the configuration has {ranks} ranks but the process group has {world}")
    return dist.get_rank(), world


# ---- collectives the runner needs ------------------------------------------------------------------------------
def all_true(flag: bool) -> bool:
    """True when ``flag`` is true on every rank of the session (a collective); ``flag`` itself without a session."""
    if _SESSION is None:
        return flag
    import torch.distributed as dist

    # over the default group, in step with the strategies' collectives: the control group is kept for the sweep's
    # own messages, so a rank that failed mid-measurement cannot pair its record with a peer's agreement
    device = torch.device("cuda", torch.cuda.current_device()) if _SESSION.backend == "nccl" else torch.device("cpu")
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def wrap_model(model: torch.nn.Module, device: torch.device, ranks: int) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when ``ranks`` > 1 (gradients all-reduced each step), else unchanged."""
    if ranks == 1:
        return model
    rank_and_world(ranks)  # a clear error instead of DDP's when there is no matching process group
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


# ---- the session --------------------------------------------------------------------------------------------------
def _local_rank() -> int:
    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise RankError(f"LOCAL_RANK={os.environ.get('LOCAL_RANK')!r} in the environment is not an integer") from None


def _backend_for(device_spec: str) -> str:
    """``nccl`` when the ranks run on CUDA devices, ``gloo`` on the CPU; checks the spec suits several ranks."""
    spec = (device_spec or "auto").strip().lower()
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return "gloo"
    if spec not in ("auto", "cuda"):
        raise RankError(f"--device {device_spec!r} names one device, but each rank uses cuda:LOCAL_RANK under "
                        "torchrun: pass --device cuda (or auto, or cpu)")
    if not torch.cuda.is_available():
        raise RankError(f"--device {device_spec!r} with several ranks, but torch sees no CUDA device here")
    return "nccl"


@dataclass
class RankSession:
    """This process's place among the ranks torchrun started, and the groups the runner talks over.

    ``backend``: the default group's (``nccl`` or ``gloo``), the one strategies exchange data over. ``control``: a
    gloo group of its own for the runner's control messages (objects on the host), so a rank that failed before a
    data collective and went on to report its record cannot be matched against a peer still inside that collective.
    """

    rank: int
    world: int
    local_rank: int
    backend: str
    control: Any = None

    @property
    def leader(self) -> bool:
        """True on rank 0, the rank that writes records, probes and reports."""
        return self.rank == 0

    @classmethod
    def start(cls, device_spec: str, *, timeout_s: float | None = None) -> RankSession:
        """Initialise the process group from torchrun's environment; ``timeout_s`` bounds every collective."""
        global _SESSION
        if _SESSION is not None:
            raise RankError("a rank session is already open in this process")
        import torch.distributed as dist

        if not dist.is_available():
            raise RankError("this torch build has no torch.distributed: several ranks cannot run")
        backend = _backend_for(device_spec)
        local_rank = _local_rank()
        if backend == "nccl":
            if local_rank >= torch.cuda.device_count():
                raise RankError(f"rank with LOCAL_RANK={local_rank} has no GPU: torch sees "
                                f"{torch.cuda.device_count()} CUDA device(s); start at most that many per node")
            torch.cuda.set_device(local_rank)  # so --device auto/cuda resolve to cuda:LOCAL_RANK
        kwargs: dict[str, Any] = {}
        if timeout_s:
            kwargs["timeout"] = datetime.timedelta(seconds=timeout_s)
        if not dist.is_initialized():
            dist.init_process_group(backend, **kwargs)
        control = dist.new_group(backend="gloo", **kwargs)  # its own group even over gloo: see the class docstring
        _SESSION = cls(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local_rank, backend=backend,
                       control=control)
        return _SESSION

    def broadcast(self, obj: Any = None) -> Any:
        """Rank 0's ``obj`` on every rank (a collective over the control group)."""
        import torch.distributed as dist

        box = [obj if self.leader else None]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank (a collective over the control group)."""
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj, group=self.control)
        return out

    def close(self) -> None:
        """Leave the process group (safe to call twice)."""
        global _SESSION
        import torch.distributed as dist

        if _SESSION is self:
            _SESSION = None
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()

    def __enter__(self) -> RankSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
