"""Study ``ceilings``: the machine probe as a study: host copy and random gather, host<->device copies, device
copy and gather, peer copies and disk IOPS, each with its method (``accessbench probe``), as one record whose
``access_extras`` holds the figures; compared with the published PCIe figure where the hardware class matches.
"""

from __future__ import annotations

from accessbench.suite.measure.config import Config
from accessbench.workloads.config import load_workload

from .base import Claim, Context, Outcome, Planned, Published, Rows, Study

__all__ = ["STUDY"]


def plan(ctx: Context) -> list[Planned]:
    wl = load_workload("tiny")
    return [Planned("probe", Config("ceiling:probe", wl, "gather", ctx.device, {"quick": ctx.quick}))]


def _pcie_gen4(rows: Rows, ctx: Context) -> Outcome:
    row = rows.get("probe")
    if row is None:
        return Outcome("not measurable here", reason="the probe row failed", roles=("probe",))
    value = (row.get("access_extras") or {}).get("h2d_pinned_gbps")
    if value is None:
        return Outcome("not measurable here", reason="no host-to-device figure (needs a CUDA device)",
                       roles=("probe",))
    pcie = str((row.get("env") or {}).get("pcie") or "")
    if "gen4" not in pcie:
        return Outcome("not measurable here", value,
                       f"measured {value:.1f} GB/s over {pcie or 'an unknown link'}; the published figure is for "
                       "PCIe Gen4 (another hardware class)", ("probe",))
    return Outcome("reproduced" if value >= 0.8 * 25.0 else "not reproduced", value,
                   f"pinned host-to-device {value:.1f} GB/s over {pcie} (counts from 80% of 25 GB/s)", ("probe",))


STUDY = Study(
    name="ceilings",
    title="what this machine allows: memory, PCIe, device, peer and disk ceilings",
    description=__doc__.strip(),
    plan=plan,
    claims=(
        Claim("pcie-gen4-memcpy", "pinned host-to-device memcpy peaks near 25 GB/s on PCIe Gen4",
              Published(25.0, "GB/s", "A100 over PCIe Gen4", "PyTorch-Direct; REFERENCE.md"), _pcie_gen4,
              needs="a CUDA device on a PCIe Gen4 link"),
    ),
)
