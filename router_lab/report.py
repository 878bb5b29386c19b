"""Compare routers across runs and sweeps: markdown + CSV tables and PNG plots.

    python -m router_lab.report roots=[outputs/train/multiruns/2026-11-22_10-00-00,outputs/train/runs]
    python -m router_lab.report roots=DIR out=outputs/report/split2 readme=experiments/routerdc_split2/README.md

(Hydra overrides of ``conf/report.yaml``: ``roots`` is one dir or a list; quote a path
holding ``, = : [ ] '`` as ``roots="['a,b']"``.)

Finds every run dir under the given DIRs (a dir holding ``metrics.json``), reads what it was
from ``.hydra/config.yaml`` / ``.hydra/hydra.yaml`` / ``.hydra/overrides.yaml`` (router family,
encoder, data, seed, other overrides) and groups runs into settings, one per (router,
encoder, data, every other override that changes the run: ``trainer.max_epochs=1`` is its
own setting); seeds are averaged (mean ± sample std), each seed once (a setting's reruns
of one seed: the latest is kept, the others are listed as left out). Runs tested on the
same data form a section (same named test files and LLM pool, whatever they trained on;
training/validation differences are noted under the table): one table per section with a column per router setting and the
baselines (random, best_single, best_per_task, oracle) beside them. Only test sets every run
of a section has are compared; the rest are listed as left out, as are runs that can't be
read (partial ``metrics.json``, no ``.hydra``).

Writes into ``outputs/report/<time>/`` (or ``out=DIR``), all at once (built in a temporary
dir, then moved): ``report.md``, ``summary.csv`` (one row per setting x method x test set x
metric), ``runs.csv`` (one row per run x metric), ``report.json`` (what the notebook loads),
``acc_predict_<section>.png`` (per test set and router, best-single and oracle marked) and,
where the data has costs, ``cost_quality_<section>.png`` (router and baselines as points) and
``cost_quality_curves_<section>.png`` + an AIQ table (curves, hulls and AIQ from the runs'
``cost_quality.json``). ``readme=FILE``
also replaces the block between ``<!-- results:start -->`` and ``<!-- results:end -->`` in
FILE with the tables and the command.

Per-query decisions for a run: ``per_query_decisions(run_dir)`` (``predictions.jsonl`` if the
run wrote one, else the router is reloaded from ``checkpoints/best.ckpt`` and re-run).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import shutil
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import yaml

from router_lab import ROOT
from router_lab.config_schema import ReportConfig
from router_lab.errors import UserError, hydra_cli, run_main
from router_lab.files import check_output_is_not_input, write_atomic

log = logging.getLogger("router_lab.report")

BASELINES = ("random", "best_single", "best_per_task", "oracle", "majority")
PERCENT_METRICS = ("acc_predict", "acc", "accuracy", "macro_f1", "fallback_rate", "aiq")
# Overrides that don't change what a run computes (where and how it ran, what it logged):
# everything else defines the setting, trainer.* (epochs, steps, precision, ...), callbacks.*
# and debug included. seed is what a setting is averaged over.
IGNORED_OVERRIDE_KEYS = re.compile(r"^(seed|model|encoder|data|hydra(\..*|/.*)?|paths\..*|logger(\..*)?|extras(\..*)?"
                                   r"|trainer|trainer\.(accelerator|devices|num_nodes|strategy|enable_progress_bar"
                                   r"|log_every_n_steps|default_root_dir|enable_model_summary)"
                                   r"|tags|task_name|optimized_metric|ckpt_path|hparams_search)$")
DATA_OVERRIDE_KEYS = re.compile(r"^(data\..*|data_seed|llm_pool(\..*)?)$")
PLOT_PREFIXES = tuple(f"{m}_" for m in PERCENT_METRICS + ("cost_quality",))  # names of the plots make_report writes
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


# ----------------------------------------------------------------------------- loading runs
@dataclass
class Run:
    """One finished run: what it was and what it measured."""

    path: Path
    router: str
    encoder: str
    data: str
    seed: int | None
    variant: str  # non-data overrides that define the setting ("" for defaults)
    data_variant: str  # data overrides (sample size, data_seed, ...)
    metrics: dict[str, float]
    cost_quality: Any = None
    data_fingerprint: str = ""  # what the data is (sources, sizes, seed, pool), whatever set it
    test_fingerprint: str = ""  # what it is tested on (see eval_data_fingerprint)
    training_data: dict = field(default_factory=dict)  # the data config's TRAINING_DATA_KEYS

    @property
    def setting(self) -> tuple[str, str, str]:
        return (self.router, self.encoder, self.variant)

    def test_sets(self, metric: str) -> set[str]:
        return {k.split("/")[0] for k in self.metrics if k.endswith(f"/router/{metric}")}


def find_run_dirs(roots: Iterable[str | Path]) -> list[Path]:
    """Every dir under ``roots`` (or a root itself) holding a metrics.json, sorted."""
    found: set[Path] = set()
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise UserError(f"report: {root} does not exist; expected a run, multirun or outputs dir")
        if (root / "metrics.json").is_file():
            found.add(root.resolve())
        for f in root.rglob("metrics.json"):
            if "report" not in f.relative_to(root).parts[:-1]:
                found.add(f.parent.resolve())
    return sorted(found)


def _read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def _override_key(o: str) -> str:
    return o.lstrip("+~").split("=", 1)[0]


def load_run(path: Path) -> Run:
    """Read one run dir; raises ValueError(reason) when it can't be compared."""
    mf = path / "metrics.json"
    try:
        metrics = json.loads(mf.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"metrics.json is not valid JSON ({type(e).__name__}; partial write?)") from None
    if not isinstance(metrics, dict):
        raise ValueError("metrics.json is not a JSON object")
    metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if not any("/router/" in k for k in metrics):
        raise ValueError("metrics.json has no '<set>/router/<metric>' keys (partial or not a router run)")
    cfg = _read_yaml(path / ".hydra" / "config.yaml")
    if not isinstance(cfg, dict):
        raise ValueError("no .hydra/config.yaml (not a router_lab.train run dir?)")
    hydra_cfg = _read_yaml(path / ".hydra" / "hydra.yaml") or {}
    choices = ((hydra_cfg.get("hydra") or {}).get("runtime") or {}).get("choices") or {}
    overrides = _read_yaml(path / ".hydra" / "overrides.yaml") or []

    model_target = str((cfg.get("model") or {}).get("_target_", "unknown"))
    router = choices.get("model") or re.sub(r"router$", "", model_target.rsplit(".", 1)[-1].lower()) or "unknown"
    encoder = str((cfg.get("encoder") or {}).get("name") or choices.get("encoder") or "unknown")
    data = str(choices.get("data") or (cfg.get("data") or {}).get("_target_", "unknown").rsplit(".", 1)[-1])
    seed = cfg.get("seed")
    data_ov = [o for o in overrides if DATA_OVERRIDE_KEYS.match(_override_key(o))]
    other_ov = [o for o in overrides if not DATA_OVERRIDE_KEYS.match(_override_key(o))
                and not IGNORED_OVERRIDE_KEYS.match(_override_key(o))]
    cq = None
    if (path / "cost_quality.json").is_file():
        try:
            cq = json.loads((path / "cost_quality.json").read_text())
        except (OSError, json.JSONDecodeError):
            log.warning("%s: cost_quality.json is not valid JSON; no curves for this run", path)
    return Run(path=path, router=str(router), encoder=encoder, data=data, data_fingerprint=data_fingerprint(cfg),
               test_fingerprint=eval_data_fingerprint(cfg),
               training_data={k: v for k, v in _data_cfg(cfg).items() if k in TRAINING_DATA_KEYS},
               seed=int(seed) if isinstance(seed, (int, float)) else None,
               variant=",".join(sorted(other_ov)), data_variant=",".join(sorted(data_ov)), metrics=metrics,
               cost_quality=cq)


TRAINING_DATA_KEYS = ("train", "val", "split", "n_train", "n_val")  # what a run learns from, not what it is tested on
_NOT_DATA_KEYS = ("batch_size", "eval_batch_size", "num_workers", "cache_dir", "encoder", "llm_pool",
                  "pad_to_max_length")


def _data_cfg(cfg: Mapping) -> dict:
    return {k: v for k, v in (cfg.get("data") or {}).items() if k not in _NOT_DATA_KEYS}


def _hash(obj: Any) -> str:
    import hashlib

    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def data_fingerprint(cfg: Mapping) -> str:
    """A short hash of what the data is: the data config without batch sizes, workers, cache
    and encoder, plus data_seed and the LLM pool. Runs with equal fingerprints are comparable
    however the data was chosen (data=..., an experiment, overrides)."""
    return _hash({"data": _data_cfg(cfg), "data_seed": cfg.get("data_seed"), "llm_pool": cfg.get("llm_pool")})


def eval_data_fingerprint(cfg: Mapping) -> str:
    """What the runs are *tested* on. With named test files (split2, CLINC150, any file-based
    data) that is the test files, their groups and the LLM pool, whatever each run trained or
    validated on, so routers trained differently on the same benchmark share one table (the
    report notes the training differences). Where test sets are carved out of the training
    data or generated (the synthetic benchmark), it is the whole data config."""
    data = _data_cfg(cfg)
    if data.get("test") and not data.get("test_split_by_task"):
        return _hash({"test": data.get("test"), "test_groups": data.get("test_groups"),
                      "data_seed": cfg.get("data_seed"), "llm_pool": cfg.get("llm_pool")})
    return data_fingerprint(cfg)


def load_runs(roots: Sequence[str | Path]) -> tuple[list[Run], list[tuple[Path, str]]]:
    """(runs, skipped) where skipped is [(run dir, reason)]."""
    runs, skipped = [], []
    for d in find_run_dirs(roots):
        try:
            runs.append(load_run(d))
        except ValueError as e:
            skipped.append((d, str(e)))
    return runs, skipped


# ----------------------------------------------------------------------------- aggregation
def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample std (0 for one value) and count of the finite values."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)


def _set_order(names: Iterable[str]) -> list[str]:
    names = set(names)
    return sorted(n for n in names if not n.startswith("avg_")) + sorted(n for n in names if n.startswith("avg_"))


@dataclass
class Section:
    """Runs on the same data: comparable settings, the common test sets, what was left out."""

    name: str
    runs: list[Run]
    metric: str  # acc_predict, or accuracy for label-only data
    settings: dict[tuple[str, str, str], list[Run]] = field(default_factory=dict)
    labels: dict[tuple[str, str, str], str] = field(default_factory=dict)
    test_sets: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. settings that trained on different data
    has_cost: bool = False
    slug: str = "data"  # file-name part for the section's plots

    def summary(self, setting, method: str, test_set: str, metric: str) -> tuple[float, float, int]:
        runs = self.settings[setting] if setting is not None else self.runs
        return mean_std([r.metrics.get(f"{test_set}/{method}/{metric}", float("nan")) for r in runs])

    def baselines(self) -> list[str]:
        return [b for b in BASELINES if any(f"{s}/{b}/{self.metric}" in r.metrics for r in self.runs
                                            for s in self.test_sets)]


def build_sections(runs: Sequence[Run]) -> list[Section]:
    by_data: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for r in runs:
        by_data[(r.data, r.test_fingerprint or r.data_fingerprint)].append(r)
    fps_per_choice: dict[str, int] = defaultdict(int)
    for data, _ in by_data:
        fps_per_choice[data] += 1
    by_section: dict[str, list[Run]] = {}
    for (data, fp), rs in by_data.items():
        # One section per distinct data; named by the data config, plus what differs when
        # the same config was run on different data (overrides, else the fingerprint).
        name = data if fps_per_choice[data] == 1 else f"{data} [{rs[0].data_variant or 'defaults'}]"
        while name in by_section:
            name = f"{data} [{fp}]"
        by_section[name] = rs
    sections = []
    for i, name in enumerate(sorted(by_section)):
        rs = by_section[name]
        metric = "acc_predict" if any(r.test_sets("acc_predict") for r in rs) else "accuracy"
        sec = Section(name=name, runs=rs, metric=metric, slug=f"{i + 1}_{_slug(rs[0].data)}")
        for r in rs:
            sec.settings.setdefault(r.setting, []).append(r)
        for setting, srs in sec.settings.items():
            sec.settings[setting], dropped = one_run_per_seed(srs)
            sec.left_out += dropped
        sec.runs = [r for srs in sec.settings.values() for r in srs]
        rs = sec.runs
        encoders = {s[1] for s in sec.settings}
        # Overrides every setting shares (e.g. debug=limit) say nothing about the difference.
        common_ov = set.intersection(*(set(filter(None, s[2].split(","))) for s in sec.settings))
        for s in sec.settings:
            router, enc, variant = s
            own = ",".join(o for o in variant.split(",") if o and o not in common_ov)
            sec.labels[s] = router + (f"/{enc}" if len(encoders) > 1 else "") + (f" ({own})" if own else "")
        sec.notes += training_differences(sec)
        common = set.intersection(*(r.test_sets(metric) for r in rs))
        sec.test_sets = _set_order(common)
        for ts in _set_order(set.union(*(r.test_sets(metric) for r in rs)) - common):
            lacking = [r for r in rs if ts not in r.test_sets(metric)]
            names = ", ".join(_short(r.path) for r in lacking[:3]) + (" ..." if len(lacking) > 3 else "")
            sec.left_out.append(f"test set {ts}: left out, missing in {len(lacking)} of {len(rs)} runs ({names})")
        for r in rs:
            if not r.test_sets(metric):
                sec.left_out.append(f"{_short(r.path)}: no {metric} for the router")
        if not common:
            sec.left_out.append(f"no test set is common to all {len(rs)} runs: nothing comparable in this section")
        sec.has_cost = any(f"{s}/router/cost" in r.metrics for r in rs for s in sec.test_sets)
        sections.append(sec)
    return sections


def one_run_per_seed(runs: Sequence[Run]) -> tuple[list[Run], list[str]]:
    """A setting's runs with each seed once: of several runs of one setting with the same seed
    (a rerun), the latest finished one (newest metrics.json) is kept and the others are
    named as left out, so no seed is averaged twice. Runs without a seed are kept as they are."""
    by_seed: dict[int, list[Run]] = defaultdict(list)
    kept: list[Run] = []
    for r in runs:
        (by_seed[r.seed] if r.seed is not None else kept).append(r)
    notes = []
    for seed, rs in by_seed.items():
        rs = sorted(rs, key=lambda r: ((r.path / "metrics.json").stat().st_mtime, str(r.path)))
        kept.append(rs[-1])
        if len(rs) > 1:
            notes.append(f"seed {seed}: {len(rs)} runs of the same setting; kept the latest ({_short(rs[-1].path)}), "
                         f"left out {', '.join(_short(r.path) for r in rs[:-1])}")
    return sorted(kept, key=lambda r: str(r.path)), notes


def _brief(v: Any, width: int = 60) -> str:
    if isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
        text = f"{len(v)} sources"
        n = {x.get("n_items") for x in v}
        return text + (f" × {n.pop()} items" if len(n) == 1 and None not in n else "")
    if v is None:
        return "null (held-out split)"
    text = json.dumps(v, sort_keys=True, default=str) if isinstance(v, (Mapping, list)) else str(v)
    return text if len(text) <= width else text[: width - 3] + "..."


def training_differences(sec: Section) -> list[str]:
    """One line per training-data key (train files, validation, split) on which the section's
    settings differ: they are tested on the same sets but did not learn from the same data."""
    keys = sorted({k for r in sec.runs for k in r.training_data})
    notes = []
    for k in keys:
        per_setting: dict[str, set[str]] = {}
        for s, rs in sec.settings.items():
            per_setting[sec.labels[s]] = {json.dumps(r.training_data.get(k), sort_keys=True, default=str) for r in rs}
        if len(set().union(*per_setting.values())) <= 1:
            continue
        parts = [f"{label}: {' / '.join(_brief(json.loads(v)) for v in sorted(vals))}"
                 for label, vals in per_setting.items()]
        notes.append(f"settings differ in data.{k} (same test sets): " + "; ".join(parts))
    return notes


def _short(p: Path) -> str:
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def fmt(mean: float, std: float, n: int, metric: str) -> str:
    if n == 0 or not math.isfinite(mean):
        return "—"
    scale = 100.0 if metric in PERCENT_METRICS else 1.0
    m = f"{scale * mean:.2f}" if scale != 1.0 else f"{mean:.4g}"
    if n == 1:
        return m
    s = f"{scale * std:.2f}" if scale != 1.0 else f"{std:.2g}"
    return f"{m} ± {s}"


# ----------------------------------------------------------------------------- tables
def section_table(sec: Section, metric: str) -> list[list[str]]:
    """Rows (header first): test set, one column per router setting, then the baselines."""
    settings = list(sec.settings)
    head = ["test set"] + [sec.labels[s] for s in settings] + sec.baselines()
    rows = [head]
    for ts in sec.test_sets:
        row = [ts] + [fmt(*sec.summary(s, "router", ts, metric), metric) for s in settings]
        # Baselines depend on the data only: show their spread only when the runs' data differ.
        row += [fmt(*_drop_zero_std(sec.summary(None, b, ts, metric)), metric) for b in sec.baselines()]
        rows.append(row)
    return rows


def _drop_zero_std(stats: tuple[float, float, int]) -> tuple[float, float, int]:
    mean, std, n = stats
    return (mean, std, n) if std > 1e-12 else (mean, 0.0, min(n, 1))


def markdown_table(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(["---"] + ["---:"] * (len(rows[0]) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


def markdown_report(sections: Sequence[Section], skipped: Sequence[tuple[Path, str]], roots: Sequence[str],
                    plots: Mapping[str, list[str]]) -> str:
    n_runs = sum(len(s.runs) for s in sections)
    lines = ["# Router comparison", "",
             f"{n_runs} runs from {', '.join(map(str, roots))}; generated {time.strftime('%Y-%m-%d %H:%M:%S')}.",
             "Values are mean ± sample std over seeds (percent for accuracies); a bare number is one run. "
             "Baselines are averaged over the section's runs.", ""]
    lines += tables_markdown(sections)
    for sec in sections:
        if plots.get(sec.name):
            lines += [f"### Plots: {sec.name}", ""] + [f"![{p}]({p})" for p in plots[sec.name]] + [""]
    left = [(sec.name, l) for sec in sections for l in sec.left_out]
    if left or skipped:
        lines += ["## Left out", ""]
        lines += [f"- {name}: {l}" for name, l in left]
        lines += [f"- skipped {_short(p)}: {why}" for p, why in skipped]
        lines.append("")
    return "\n".join(lines)


def tables_markdown(sections: Sequence[Section]) -> list[str]:
    lines = []
    for sec in sections:
        lines += [f"## {sec.name}", "", "| setting | router | encoder | overrides | seeds |", "|---|---|---|---|---|"]
        for s, rs in sec.settings.items():
            seeds = ",".join(str(r.seed) for r in sorted(rs, key=lambda r: (r.seed is None, r.seed or 0)))
            lines.append(f"| {sec.labels[s]} | {s[0]} | {s[1]} | {s[2] or '—'} | {seeds} ({len(rs)}) |")
        lines.append("")
        if sec.notes:
            lines += [f"Note: {n}" for n in sec.notes] + [""]
        if not sec.test_sets:
            lines += ["Nothing comparable (see Left out).", ""]
            continue
        pct = " (%)" if sec.metric in PERCENT_METRICS else ""
        lines += [f"### {sec.metric}{pct}", "", markdown_table(section_table(sec, sec.metric)), ""]
        if sec.has_cost:
            lines += ["### cost (mean per query)", "", markdown_table(section_table(sec, "cost")), ""]
        if curve_sets(sec):
            head = ["test set"] + [sec.labels[s] for s in sec.settings]
            rows = [head] + [[ts] + [fmt(*aiq_stats(sec, s, ts), "acc_predict") for s in sec.settings]
                             for ts in curve_sets(sec)]
            lines += ["### AIQ (%), area under the cost-quality hull (cost_quality.json)", "", markdown_table(rows), ""]
    return lines


def summary_rows(sections: Sequence[Section]) -> list[dict]:
    rows = []
    for sec in sections:
        metrics = sorted({k.split("/", 2)[2] for r in sec.runs for k in r.metrics if k.count("/") == 2})
        for ts in sec.test_sets:
            for m in metrics:
                for s, rs in sec.settings.items():
                    mean, std, n = sec.summary(s, "router", ts, m)
                    if n:
                        rows.append(dict(section=sec.name, setting=sec.labels[s], router=s[0], encoder=s[1],
                                         overrides=s[2], method="router", test_set=ts, metric=m, mean=mean, std=std,
                                         n=n))
                for b in BASELINES:
                    mean, std, n = sec.summary(None, b, ts, m)
                    if n:
                        rows.append(dict(section=sec.name, setting=b, router=b, encoder="", overrides="", method=b,
                                         test_set=ts, metric=m, mean=mean, std=std, n=n))
    return rows


def run_rows(sections: Sequence[Section]) -> list[dict]:
    return [dict(run=str(r.path), section=sec.name, setting=sec.labels[r.setting], router=r.router, encoder=r.encoder,
                 overrides=r.variant, seed=r.seed, metric=k, value=v)
            for sec in sections for r in sec.runs for k, v in sorted(r.metrics.items())]


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


# ----------------------------------------------------------------------------- plots
def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_")[:80] or "data"


def plot_acc_predict(sec: Section, path: Path) -> None:
    """Grouped bars per test set, one per router setting (error bar = std over seeds);
    best-single (dashed), oracle (solid) and, on label-only data, majority class (dotted)
    marked over each test set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings, sets, m = list(sec.settings), sec.test_sets, sec.metric
    width = 0.8 / max(1, len(settings))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(sets) * max(1, len(settings)) ** 0.5 + 2), 4.2))
    x = np.arange(len(sets))
    for i, s in enumerate(settings):
        stats = [sec.summary(s, "router", ts, m) for ts in sets]
        ax.bar(x - 0.4 + width * (i + 0.5), [100 * a for a, _, _ in stats], width,
               yerr=[100 * (b if n > 1 else 0) for _, b, n in stats], capsize=2, label=sec.labels[s])
    # Label-only data (metric accuracy) has the majority-class baseline instead of LLM scores.
    for b, style, color in (("best_single", "--", "black"), ("oracle", "-", "tab:red"), ("majority", ":", "tab:gray")):
        labelled = False
        for j, ts in enumerate(sets):
            mean, _, n = sec.summary(None, b, ts, m)
            if n and not math.isnan(mean):
                ax.hlines(100 * mean, j - 0.45, j + 0.45, colors=color, linestyles=style,
                          label=None if labelled else b.replace("_", " "))
                labelled = True
    ax.set_xticks(x, sets, rotation=35, ha="right")
    ax.set_ylabel(f"{m} (%)")
    ax.set_title(f"{m} per test set: {sec.name}")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def cost_quality_curves(obj: Any, prefix: str = "") -> list[dict]:
    """Curves found in a run's cost_quality.json, whatever its nesting: every mapping with a
    list of points (``curve``/``points``: [{cost, quality}] or [[cost, quality]]) becomes
    {name, cost, quality, aiq, hull_cost, hull_quality}."""
    def pts(v):
        if not isinstance(v, list) or not v:
            return None
        try:
            if isinstance(v[0], Mapping):
                return [float(p["cost"]) for p in v], [float(p["quality"]) for p in v]
            return [float(p[0]) for p in v], [float(p[1]) for p in v]
        except (KeyError, TypeError, IndexError, ValueError):
            return None

    out = []
    if isinstance(obj, Mapping):
        for key in ("curve", "points"):
            p = pts(obj.get(key))
            if p:
                hull = obj.get("hull")
                h = pts(hull) if isinstance(hull, list) else (
                    (list(map(float, hull.get("cost", []))), list(map(float, hull.get("quality", []))))
                    if isinstance(hull, Mapping) else None)
                aiq = obj.get("aiq")
                out.append(dict(name=prefix or "all", cost=p[0], quality=p[1],
                                aiq=float(aiq) if isinstance(aiq, (int, float)) else None,
                                hull_cost=h[0] if h else None, hull_quality=h[1] if h else None))
                break
        for k, v in obj.items():
            if isinstance(v, Mapping):
                out += cost_quality_curves(v, f"{prefix}/{k}" if prefix else str(k))
    return out


def run_curves(run: Run) -> list[dict]:
    """A run's cost-quality curves, each named by its test set (the last part of its path)."""
    if run.cost_quality is None:
        return []
    return [cv | {"name": cv["name"].split("/")[-1]} for cv in cost_quality_curves(run.cost_quality)]


def curve_aiq(cv: dict) -> float:
    from router_lab.metrics import aiq

    return cv["aiq"] if cv["aiq"] is not None else aiq(cv["cost"], cv["quality"])


def aiq_stats(sec: Section, setting, test_set: str) -> tuple[float, float, int]:
    """AIQ of a router setting on a test set over its seeds (from cost_quality.json)."""
    return mean_std([curve_aiq(cv) for r in sec.settings[setting] for cv in run_curves(r) if cv["name"] == test_set])


def curve_sets(sec: Section) -> list[str]:
    have = {cv["name"] for r in sec.runs for cv in run_curves(r)}
    return [t for t in sec.test_sets if t in have]


def plot_cost_quality_curves(sec: Section, path: Path) -> None:
    """One panel per test set with curves: each router setting's cost-quality curve (first
    seed) and hull, AIQ (mean over seeds) in the legend; baselines as grey points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = curve_sets(sec)
    cols = min(4, len(sets))
    rows = math.ceil(len(sets) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, ts in zip(axes.flat, sets):
        for i, (s, rs) in enumerate(sec.settings.items()):
            cvs = [cv for r in rs for cv in run_curves(r) if cv["name"] == ts]
            if not cvs:
                continue
            cv, (a, _, _) = cvs[0], aiq_stats(sec, s, ts)
            order = np.argsort(cv["cost"])
            ax.plot(np.asarray(cv["cost"])[order], 100 * np.asarray(cv["quality"])[order], "-", color=f"C{i}",
                    alpha=0.8, label=f"{sec.labels[s]} (AIQ {100 * a:.1f})")
            if cv["hull_cost"]:
                ax.plot(cv["hull_cost"], 100 * np.asarray(cv["hull_quality"]), ":", color=f"C{i}")
        for j, b in enumerate(("random", "best_single", "oracle")):
            c, _, nc = sec.summary(None, b, ts, "cost")
            q, _, nq = sec.summary(None, b, ts, sec.metric)
            if nc and nq:
                ax.scatter([c], [100 * q], marker="s^D"[j], color="gray", s=18, label=b.replace("_", " "))
        ax.set_title(ts, fontsize=9)
        ax.set_xlabel("mean cost per query", fontsize=8)
        ax.set_ylabel(f"{sec.metric} (%)", fontsize=8)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(sets):]:
        ax.axis("off")
    fig.suptitle(f"cost-quality curves (willingness to pay): {sec.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_cost_quality(sec: Section, path: Path) -> None:
    """Mean cost vs acc_predict over the section's test sets: each router setting and
    baseline as a point; each setting's curves from cost_quality.json (first run) with AIQ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from router_lab.metrics import aiq

    rows = [t for t in sec.test_sets if t.startswith("avg_")] or sec.test_sets
    fig, axes = plt.subplots(1, len(rows[:3]), figsize=(5.2 * len(rows[:3]), 4.2), squeeze=False)
    for ax, ts in zip(axes[0], rows[:3]):
        for i, (s, rs) in enumerate(sec.settings.items()):
            color = f"C{i}"
            c, cs, _ = sec.summary(s, "router", ts, "cost")
            q, qs, n = sec.summary(s, "router", ts, sec.metric)
            if n and math.isfinite(c):
                ax.errorbar(c, 100 * q, xerr=cs, yerr=100 * qs, fmt="o", color=color, capsize=2,
                            label=sec.labels[s])
            curves = [cv for cv in run_curves(rs[0]) if cv["name"] == ts]
            for cv in curves[:1]:
                a = cv["aiq"] if cv["aiq"] is not None else aiq(cv["cost"], cv["quality"])
                order = np.argsort(cv["cost"])
                ax.plot(np.asarray(cv["cost"])[order], 100 * np.asarray(cv["quality"])[order], ".-", color=color,
                        alpha=0.6, label=f"{sec.labels[s]} curve (AIQ {100 * a:.2f})")
                if cv["hull_cost"]:
                    ax.plot(cv["hull_cost"], 100 * np.asarray(cv["hull_quality"]), ":", color=color)
        for j, b in enumerate(("random", "best_single", "best_per_task", "oracle")):
            c, _, nc = sec.summary(None, b, ts, "cost")
            q, _, nq = sec.summary(None, b, ts, sec.metric)
            if nc and nq:
                ax.scatter([c], [100 * q], marker="s^vD"[j], color="gray", label=b.replace("_", " "))
        ax.set_xlabel("mean cost per query")
        ax.set_ylabel(f"{sec.metric} (%)")
        ax.set_title(ts)
        ax.legend(fontsize=7)
    fig.suptitle(f"cost vs quality: {sec.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- writing
def update_readme(readme: Path, tables: str, command: str) -> None:
    """Replace the results block of an experiment README (between the markers)."""
    text = readme.read_text() if readme.is_file() else f"{README_START}\n{README_END}\n"
    if README_START not in text or README_END not in text:
        raise UserError(f"readme={readme}: no '{README_START}' ... '{README_END}' block to replace")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    block = (f"{README_START}\nLast recorded {time.strftime('%Y-%m-%d %H:%M')} with:\n\n```\n{command}\n```\n\n"
             f"{tables.strip()}\n{README_END}")
    write_atomic(readme, head + block + tail)


def make_report(roots: Sequence[str | Path], out: str | Path | None = None, readme: str | Path | None = None,
                command: str | None = None) -> Path:
    """Gather runs under ``roots`` and write the report; returns its directory."""
    roots = [str(r) for r in roots]
    if not roots:
        raise UserError("report: no directories given; usage: python -m router_lab.report roots=[DIR,...] [out=DIR]")
    runs, skipped = load_runs(roots)
    for p, why in skipped:
        print(f"skipped {_short(p)}: {why}", file=sys.stderr)
    if not runs:
        extra = f" ({len(skipped)} skipped, see above)" if skipped else ""
        raise UserError(f"report: no finished runs (a dir with a valid metrics.json) under {', '.join(roots)}{extra}")
    sections = build_sections(runs)
    for sec in sections:
        for l in sec.left_out:
            print(f"left out [{sec.name}] {l}", file=sys.stderr)

    out = Path(out) if out else ROOT / "outputs" / "report" / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}-{os.getpid()}"
    check_output_is_not_input(out, roots, "out")  # a report is written beside runs, never over them
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        plots: dict[str, list[str]] = {}
        for sec in sections:
            if not sec.test_sets:
                continue
            name = f"{sec.metric}_{sec.slug}.png"
            plot_acc_predict(sec, stage / name)
            plots.setdefault(sec.name, []).append(name)
            if sec.has_cost and sec.metric == "acc_predict":
                name = f"cost_quality_{sec.slug}.png"
                plot_cost_quality(sec, stage / name)
                plots[sec.name].append(name)
            if curve_sets(sec):
                name = f"cost_quality_curves_{sec.slug}.png"
                plot_cost_quality_curves(sec, stage / name)
                plots[sec.name].append(name)
        (stage / "report.md").write_text(markdown_report(sections, skipped, roots, plots))
        (stage / "summary.csv").write_text(to_csv(summary_rows(sections)))
        (stage / "runs.csv").write_text(to_csv(run_rows(sections)))
        (stage / "report.json").write_text(json.dumps({
            "roots": roots,
            "sections": [{"name": s.name, "metric": s.metric, "test_sets": s.test_sets, "left_out": s.left_out,
                          "plots": plots.get(s.name, []),
                          "settings": [{"label": s.labels[k], "router": k[0], "encoder": k[1], "overrides": k[2],
                                        "runs": [str(r.path) for r in rs], "seeds": [r.seed for r in rs]}
                                       for k, rs in s.settings.items()]} for s in sections],
            "skipped": [[str(p), why] for p, why in skipped]}, indent=2))
        if out.exists():
            out.mkdir(exist_ok=True)
            # A report made here before: its plots that this one does not make would look current.
            try:
                old_plots = {p for sec in json.loads((out / "report.json").read_text())["sections"]
                             for p in sec.get("plots", [])}
            except (OSError, ValueError, KeyError, TypeError):
                old_plots = set()
            for name in old_plots - {f.name for f in stage.iterdir()}:
                # report.json is data: only a bare name of a plot this command makes is removed
                if isinstance(name, str) and Path(name).name == name and name.endswith(".png") \
                        and name.startswith(PLOT_PREFIXES):
                    (out / name).unlink(missing_ok=True)
            for f in stage.iterdir():
                os.replace(f, out / f.name)
            stage.rmdir()
        else:
            os.rename(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if readme:
        update_readme(Path(readme), "\n".join(tables_markdown(sections)),
                      command or f"python -m router_lab.report roots=[{','.join(roots)}]")
    print(f"report: {out / 'report.md'} ({sum(len(s.runs) for s in sections)} runs, {len(skipped)} skipped)")
    return out


# ----------------------------------------------------------------------------- loading a report
def load_report(report_dir: str | Path) -> dict:
    """What a notebook needs: report.json plus the summary and per-run rows as lists of dicts."""
    d = Path(report_dir)
    meta = json.loads((d / "report.json").read_text())
    read = lambda f: list(csv.DictReader((d / f).open())) if (d / f).is_file() else []
    return meta | {"dir": str(d), "summary": read("summary.csv"), "runs": read("runs.csv"),
                   "markdown": (d / "report.md").read_text()}


def latest_report(root: str | Path | None = None) -> Path | None:
    root = Path(root) if root else ROOT / "outputs" / "report"
    done = sorted(p for p in root.glob("*") if (p / "report.json").is_file()) if root.is_dir() else []
    return done[-1] if done else None


# ----------------------------------------------------------------------------- per-query decisions
def per_query_decisions(run_dir: str | Path, test_set: str | None = None, limit: int | None = None) -> list[dict]:
    """One dict per test query: test_set, index, text, task, chosen LLM, its score, the best
    score, the best LLMs, confidence and fallback. From ``<run>/predictions.jsonl`` when the
    run wrote one; else the router is reloaded from ``checkpoints/best.ckpt`` (weights only)
    with the run's data config and its ``decide(batch)`` re-run on the test sets."""
    run = Path(run_dir)
    pred = run / "predictions.jsonl"
    if pred.is_file():
        rows = [json.loads(l) for l in pred.read_text().splitlines() if l.strip()]
        rows = [r for r in rows if test_set is None or r.get("test_set") == test_set]
        return rows[:limit] if limit else rows
    return _decisions_from_checkpoint(run, test_set, limit)


def _decisions_from_checkpoint(run: Path, test_set: str | None, limit: int | None) -> list[dict]:
    import lightning as L

    from router_lab.results import decide_test_sets, decision_rows
    from router_lab.runs import default_paths, load_run_config, load_run_datamodule, load_run_model

    ckpt = run / "checkpoints" / "best.ckpt"
    if not ckpt.is_file() or not (run / ".hydra" / "config.yaml").is_file():
        raise UserError(f"{run}: no predictions.jsonl and no checkpoints/best.ckpt + .hydra/config.yaml to "
                        "recompute the decisions from")
    # The run dir is data: a registered family from a weights-only checkpoint, a registered data module.
    model, _ = load_run_model(ckpt)
    cfg, cfg_file = load_run_config(run)
    dm = load_run_datamodule(cfg, str(cfg_file), default_paths(run))
    dm.setup("test")
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    llms = list(model.hparams["data_info"]["llm_names"])
    rows = [row for name, out in decide_test_sets(trainer, model, dm).items() if test_set in (None, name)
            for row in decision_rows(name, out, dm.test_sets[name].records, llms, dm.categories)]
    return rows[:limit] if limit else rows


# ----------------------------------------------------------------------------- CLI
def report(opts: ReportConfig) -> Path:
    roots = [opts.roots] if isinstance(opts.roots, str) else list(opts.roots or [])
    if opts.out and Path(opts.out).exists() and not Path(opts.out).is_dir():
        raise UserError(f"report: out={opts.out} is an existing file; expected a directory to write the report into")
    try:  # the command as given, for readme=
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        command = "python -m router_lab.report " + " ".join(hc.overrides.task) if hc.job.config_name == "report" \
            else None
    except ValueError:  # called with a config, not from the command line
        command = None
    return make_report(roots, opts.out, opts.readme, command=command)


@hydra_cli("report", schema=ReportConfig, options=True)
def main(opts: ReportConfig) -> Path:
    return run_main(report, opts)


if __name__ == "__main__":
    main()
