"""How much room the synthetic benchmark leaves a router: best single LLM vs per-task best vs oracle.

    python benchmarks/synthetic_gap.py                 # seeds 0 1 2, default sizes
    python benchmarks/synthetic_gap.py --seeds 0 5

For each seed, one row per test set (``test_<domain>`` in distribution, ``ood_<domain>``
held out) with mean effective scores (multi_attempt: the score; probability: answered
correctly): the best single LLM chosen on train, each task sent to its best LLM on that
set, and the per-query oracle. Prints Markdown, ready for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
from router_lab.data.loaders.synthetic import describe_benchmark, make_synthetic_benchmark


def gap_table(seed: int) -> tuple[str, dict[str, float]]:
    desc = describe_benchmark(make_synthetic_benchmark(seed=seed))
    tests = [k for k in desc if k not in ("train", "val")]
    lines = [
        f"Seed {seed}: best single LLM on train = `{desc['train']['best_single_llm']}`",
        "",
        "| test set | n | best single | per-task best | oracle | gap (oracle - single) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k in tests:
        d = desc[k]
        lines.append(f"| {k} | {d['n']} | {d['best_single']:.3f} | {d['per_task_best']:.3f} | "
                     f"{d['oracle']:.3f} | {d['gap']:+.3f} |")
    avg = {key: float(np.mean([desc[k][key] for k in tests])) for key in ("best_single", "per_task_best", "oracle", "gap")}
    lines.append(f"| **mean of test sets** | | **{avg['best_single']:.3f}** | **{avg['per_task_best']:.3f}** | "
                 f"**{avg['oracle']:.3f}** | **{avg['gap']:+.3f}** |")
    return "\n".join(lines), avg


def main(seeds: list[int]) -> None:
    averages = []
    for seed in seeds:
        table, avg = gap_table(seed)
        averages.append(avg)
        print(table, end="\n\n")
    mean = {k: float(np.mean([a[k] for a in averages])) for k in averages[0]}
    print(f"Mean over seeds {', '.join(map(str, seeds))} (test sets weighted equally): "
          f"best single {mean['best_single']:.3f}, per-task best {mean['per_task_best']:.3f} "
          f"({mean['per_task_best'] - mean['best_single']:+.3f}), oracle {mean['oracle']:.3f} "
          f"(gap {mean['gap']:+.3f}).")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    main(parser.parse_args().seeds)
