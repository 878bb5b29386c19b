"""Quality report of generated sets (offline backend): pass rate per validation layer,
rejection reasons, duplicate rate, distinct-2, label and augmentation histograms.

    python benchmarks/synth_quality.py [--items 300]

Writes outputs/synth/bench/quality/{arch_router,agent_tools}/ (the runs), report.json and
histograms.png there, and prints markdown tables.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router_lab import ROOT  # noqa: E402
from router_lab.synth.quality import layer_pass_rates  # noqa: E402
from router_lab.synth.run import run_synth  # noqa: E402
from tests.synth_fixtures.configs import synth_cfg  # noqa: E402

LAYERS = {"arch_router": ["structural", "alignment", "dedup"],
          "agent_tools": ["structural", "quality", "domain_safety", "dedup"]}


def report(recipe: str, n: int, base: Path) -> dict:
    run_dir = base / recipe
    shutil.rmtree(run_dir, ignore_errors=True)
    overrides = ["synth.taxonomy.source=auto"] if recipe == "arch_router" else []
    cfg = synth_cfg(recipe, overrides, n_items=n)
    if recipe == "arch_router":  # the whole CLINC150 taxonomy when it is there
        cfg["taxonomy"].update(source="auto", max_domains=None, max_intents_per_domain=4)
    s = run_synth(cfg, run_dir)
    return {"recipe": recipe, "items": n, "records": s["records"],
            "pass_rates": layer_pass_rates(n, s["rejections_by_layer"], LAYERS[recipe]),
            "duplicate_rate": round(s["items"]["duplicates_removed"] / max(1, s["items"]["accepted"]), 4),
            "distinct_2": s["distinct_2"], "rejection_reasons": s["rejection_reasons"],
            "labels": s["labels"], "branches": s["branches"], "events": s["stages"]["events"],
            "invalid_replies": s["stages"]["invalid"]}


def plot(reports: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    arch, agent = reports
    top = list(arch["labels"].items())[:25]
    axes[0].bar([k for k, _ in top], [v for _, v in top])
    axes[0].set_title(f"arch_router labels (top {len(top)} of {len(arch['labels'])})")
    axes[1].bar(list(arch["branches"]), list(arch["branches"].values()), color="tab:orange")
    axes[1].set_title("arch_router augmentation branches")
    axes[2].bar(list(agent["labels"]), list(agent["labels"].values()), color="tab:green")
    axes[2].set_title("agent_tools labels")
    for ax in axes:
        ax.tick_params(axis="x", rotation=70, labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=300)
    a = ap.parse_args()
    base = ROOT / "outputs" / "synth" / "bench" / "quality"
    reports = [report("arch_router", a.items, base), report("agent_tools", a.items, base)]
    (base / "report.json").write_text(json.dumps(reports, indent=2))
    plot(reports, base / "histograms.png")
    for r in reports:
        print(f"\n**{r['recipe']}** ({r['items']} items -> {r['records']} records; duplicate rate "
              f"{r['duplicate_rate']:.1%}; distinct-2 {r['distinct_2']})\n")
        print("| layer | in | rejected | pass rate |\n|---|---|---|---|")
        for layer, v in r["pass_rates"].items():
            print(f"| {layer} | {v['in']} | {v['rejected']} | {v['pass_rate']:.1%} |")
        print("\nrejection reasons: " + "; ".join(f"{k} ({v})" for k, v in list(r["rejection_reasons"].items())[:8]))
        print("labels: " + ", ".join(f"{k}={v}" for k, v in list(r["labels"].items())[:12])
              + (" ..." if len(r["labels"]) > 12 else ""))
        print("branches: " + ", ".join(f"{k}={v}" for k, v in r["branches"].items()))
    print(f"\nhistograms: {(base / 'histograms.png').relative_to(ROOT)}")


if __name__ == "__main__":
    main()
