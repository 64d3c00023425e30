"""Markdown tables of docs/results/cached_policies.md from the simulated records in docs/results/cached/*.jsonl.

Usage: python docs/results/cached/make_tables.py 'policy_table("default-policies")'
"""
import json

R = "docs/results/cached"
def load(name):
    return [json.loads(l) for l in open(f"{R}/{name}.jsonl")]
POL = ["degree", "presample", "lru", "clock", "hybrid", "belady"]
def policy_table(name):
    rows = load(name)
    fr = sorted({r["cache_fraction"] for r in rows})
    hr = {(r["policy"], r["cache_fraction"]): r["hit_rate"] for r in rows}
    out = ["| policy | " + " | ".join(f"{f:.0%} cache" for f in fr) + " |", "|---|" + "---|" * len(fr)]
    for p in POL:
        if (p, fr[0]) in hr:
            out.append(f"| {p} | " + " | ".join(f"{100*hr[(p,f)]:.1f}%" for f in fr) + " |")
    out.append("| hybrid / belady | " + " | ".join(f"{100*hr[('hybrid',f)]/hr[('belady',f)]:.1f}%" for f in fr) + " |")
    return "\n".join(out)
def placement_table(name, single):
    rows = load(name); one = {(r["policy"], r["cache_fraction"]): r for r in load(single)}
    out = ["| policy | GPUs | replicate, 5%/GPU | partition, 5%/GPU (peer share) | one GPU, 5% x N | partition - one GPU (pp) |", "|---|---|---|---|---|---|"]
    by = {(r["policy"], r["ranks"], r["placement"]): r for r in rows}
    for p in ["degree", "presample", "lru", "hybrid", "belady"]:
        for n in (2, 4, 8):
            rep, part = by[(p, n, "replicate")], by[(p, n, "partition")]
            o = one.get((p, round(0.05 * n, 2)))
            ov = f"{100*o['hit_rate']:.1f}%" if o else "-"
            diff = f"{100*(part['hit_rate']-o['hit_rate']):+.1f}" if o else "-"
            out.append(f"| {p} | {n} | {100*rep['hit_rate']:.1f}% | {100*part['hit_rate']:.1f}% ({100*part['hit_rate_peer']:.1f}%) | {ov} | {diff} |")
    return "\n".join(out)
def victim_table(name):
    rows = load(name)
    out = ["| policy | cache | without ring | with ring (device + victim) |", "|---|---|---|---|"]
    by = {(r["policy"], r["cache_fraction"], r["options"]["victim_buffer"]): r for r in rows}
    for f in (0.05, 0.2):
        for p in ["lru", "clock", "hybrid", "belady"]:
            a, b = by[(p, f, False)], by[(p, f, True)]
            out.append(f"| {p} | {f:.0%} | {100*a['hit_rate']:.1f}% | {100*b['hit_rate']:.1f}% ({100*b['hit_rate_device']:.1f}% + {100*b['hit_rate_victim']:.1f}%) |")
    return "\n".join(out)
def tune_table():
    base = {(r["policy"], r["cache_fraction"]): r["hit_rate"] for r in load("tune-200k-policies")}
    fr = [0.05, 0.1, 0.2, 0.4]
    out = ["| hybrid look-ahead | " + " | ".join(f"{f:.0%}" for f in fr) + " |", "|---|" + "---|" * len(fr)]
    for w in (0, 4, 16, 64):
        hr = {r["cache_fraction"]: r["hit_rate"] for r in load(f"tune-200k-hybrid-w{w}")}
        out.append(f"| {w} batches | " + " | ".join(f"{100*hr[f]:.1f}%" for f in fr) + " |")
    out.append("| auto (4 cache-fulls) | " + " | ".join(f"{100*base[('hybrid',f)]:.1f}%" for f in fr) + " |")
    for p in ("degree", "lru", "belady"):
        out.append(f"| *{p}* | " + " | ".join(f"{100*base[(p,f)]:.1f}%" for f in fr) + " |")
    return "\n".join(out)
def proj_table(name):
    rows = load(name)
    out = ["| GPUs | placement | policy | cache/GPU | hit rate | GB over PCIe (trace) | GB peer (trace) | projected s/epoch serial | overlap |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['ranks']} | {r['placement']} | {r['policy']} | {r['cache_fraction']:.0%} | {100*r['hit_rate']:.1f}% | {r['bytes_h2d']/1e9:.2f} | {r['bytes_peer']/1e9:.2f} | {r['projected_epoch_s']:.4f} | {r['projected_epoch_s_overlap']:.4f} |")
    return "\n".join(out)
import sys

print(eval(sys.argv[1]))
