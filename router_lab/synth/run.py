"""Run a recipe end to end into a run dir; resumable.

    python -m router_lab.synth                                   # Arch-Router recipe, offline backend
    python -m router_lab.synth synth=agent_tools synth.backend=groq
    python -m router_lab.synth synth.resume_dir=outputs/synth/runs/<dir>   # continue a killed run

In-process: ``summary = run_synth(synth_cfg_dict, run_dir)``. Work items are processed
concurrently (``concurrency`` requests in flight) and logged to ``items.jsonl`` as each
finishes; a rerun on the same dir skips logged items and replays cached requests, and the
final files are rebuilt from the whole log in item order, so an interrupted-then-resumed
run ends with exactly the records of an uninterrupted one. Run-wide choices (the
Arch-Router route policies) are recorded in the run dir and reused on resume, and every
request event is appended to ``requests_log.jsonl``: the summary's request, token and
cost totals cover all sessions of a run.

Settings are validated first (:mod:`router_lab.synth.settings`); a run that produced no
record, or a server that cannot be reached, ends with one line (a ``UserError``), the
rejections written, and no ``records.jsonl``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

from router_lab.data.records import RoutingRecord, records_to_dataset
from router_lab.synth.backends import Ledger, LLMClient, RequestCache, RetryPolicy, SynthConfigError, build_backend, gather_all
from router_lab.synth.dedup import find_duplicates, normalise
from router_lab.synth.quality import distinct_n, histogram
from router_lab.synth.store import ItemLog, atomic_save_dataset, atomic_write_jsonl, atomic_write_text

log = logging.getLogger(__name__)

# What decides the content of a record: a resumed run must agree on these.
_FINGERPRINT_KEYS = ("recipe", "seed", "stages", "taxonomy", "turns", "judge", "augment", "axes", "intent_mix",
                     "quality", "scoring", "offline", "backend")


def recipe_for(cfg: Mapping[str, Any], client: LLMClient):
    name = cfg.get("recipe")
    if name == "arch_router":
        from router_lab.synth.arch_router import ArchRouterRecipe

        return ArchRouterRecipe(cfg, client)
    if name == "agent_tools":
        from router_lab.synth.agent_tools import AgentToolsRecipe

        return AgentToolsRecipe(cfg, client)
    raise SynthConfigError(f"synth.recipe is {name!r}; expected arch_router or agent_tools")


def _check_resume(cfg: Mapping[str, Any], run_dir: Path) -> None:
    saved = run_dir / "synth_config.json"
    current = {k: cfg.get(k) for k in _FINGERPRINT_KEYS}
    if saved.exists():
        try:
            old = json.loads(saved.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = None
        if old is not None and old != json.loads(json.dumps(current)):
            diff = sorted(k for k in current if json.loads(json.dumps(current.get(k))) != old.get(k))
            if not cfg.get("resume_force"):
                raise SynthConfigError(
                    f"{saved}: this run dir was generated with different synth settings ({diff}); "
                    f"resume with the same config, or set synth.resume_force=true"
                )
            log.warning("resuming %s with different settings %s (resume_force)", run_dir, diff)
    atomic_write_text(saved, json.dumps(current, indent=2, sort_keys=True))


class NoRecords(SynthConfigError):
    """The run finished but kept no record (every item rejected, or no route policy)."""


def run_synth(cfg: Mapping[str, Any], run_dir: str | os.PathLike) -> dict:
    """Generate (or finish) a run in ``run_dir``; returns the summary."""
    from router_lab.synth.settings import check_settings

    check_settings(cfg)
    return asyncio.run(_run(dict(cfg), Path(run_dir)))


async def _run(cfg: dict, run_dir: Path) -> dict:
    if run_dir.exists() and not run_dir.is_dir():
        raise SynthConfigError(f"{run_dir}: the run dir is a file; expected a directory")
    backend = build_backend(cfg)  # a missing API key fails here, before anything is written
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_resume(cfg, run_dir)
    r = cfg.get("retry") or {}
    policy = RetryPolicy(int(r.get("max_attempts", 6)), float(r.get("base_delay_s", 0.5)),
                         float(r.get("max_delay_s", 30.0)), float(r.get("jitter", 0.5)))
    items = ItemLog(run_dir / "items.jsonl")
    resumed = len(items.done)
    counts = Counter(accepted=sum(v["status"] == "accepted" for v in items.done.values()),
                     rejected=sum(v["status"] != "accepted" for v in items.done.values()))
    bar = None

    def on_event(kind: str) -> None:
        counts[kind] += 1
        if bar is not None:
            bar.set_postfix(counts, refresh=False)

    client = LLMClient(backend, RequestCache(run_dir / "requests_cache.jsonl"), policy,
                       int(cfg.get("concurrency", 8)), int(cfg.get("seed", 0)), on_event,
                       ledger=Ledger(run_dir / "requests_log.jsonl"))
    t0 = time.perf_counter()
    recipe = None
    try:
        recipe = recipe_for(cfg, client)
        try:
            await recipe.prepare(run_dir)
        except NoRecords:
            atomic_write_jsonl(run_dir / "rejections.jsonl", [{"item": "-", **x} for x in recipe.prep_rejections])
            raise
        n = recipe.n_items()
        for i, row in sorted(items.done.items()):
            recipe.check_logged(i, row)
        todo = [i for i in range(n) if i not in items.done]
        if cfg.get("progress", True):
            from tqdm.auto import tqdm

            bar = tqdm(total=n, initial=n - len(todo), desc=f"synth {recipe.name}", unit="item", dynamic_ncols=True)
            bar.set_postfix(counts, refresh=False)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in todo:
            queue.put_nowait(i)

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                try:
                    res = await recipe.process(i)
                except SynthConfigError:
                    raise
                except Exception as e:  # noqa: BLE001 - one bad item never ends the run
                    log.exception("item %d failed", i)
                    res = {"item": i, "status": "rejected", "outputs": [], "events": {},
                           "rejections": [{"stage": "item", "reason": f"error: {type(e).__name__}: {e}"}]}
                items.append(res)
                counts["accepted" if res["status"] == "accepted" else "rejected"] += 1
                for rej in res.get("rejections", []):
                    log.debug("item %d rejected at %s: %s", i, rej.get("stage"), rej.get("reason"))
                if bar is not None:
                    bar.set_postfix(counts, refresh=False)
                    bar.update(1)

        # Twice as many items in flight as request slots keeps the slots busy between an
        # item's sequential stages.
        n_workers = max(1, min(len(todo), 2 * client.concurrency))
        await gather_all(*(worker() for _ in range(n_workers)))
    finally:
        if bar is not None:
            bar.close()
        items.close()
        await client.aclose()
    elapsed = time.perf_counter() - t0
    summary = _finalize(cfg, recipe, client, items, n, run_dir)
    summary["timing"] = {"elapsed_s": round(elapsed, 3), "items_this_session": len(todo),
                         "items_resumed": resumed,
                         "items_per_s": round(len(todo) / elapsed, 3) if elapsed > 0 else None}
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2, sort_keys=True))
    if cfg.get("print_summary", True):
        print(format_summary(summary, run_dir))
    return summary


def _reason_kind(reason: str) -> str:
    return re.sub(r"\d+(\.\d+)?", "#", reason.split("\n")[0])[:100]


def _finalize(cfg: dict, recipe, client: LLMClient, items: ItemLog, n: int, run_dir: Path) -> dict:
    results = [items.done[i] for i in range(n) if i in items.done]
    accepted = [r for r in results if r["status"] == "accepted"]
    d = cfg.get("dedup") or {}
    dup_of = {}
    if d.get("enabled", True):
        dup_of = find_duplicates([r.get("dedup_text", "") for r in accepted], d.get("method", "minhash"),
                                 float(d.get("threshold", 0.85)), int(d.get("num_perm", 64)), int(d.get("shingle", 3)))
    rejections = [{"item": "-", **x} for x in recipe.prep_rejections]
    for r in results:
        rejections += [{"item": r["item"], **x} for x in r.get("rejections", []) + r.get("branch_rejections", [])]
    kept = []
    for k, r in enumerate(accepted):
        if k in dup_of:
            kind, j = dup_of[k]
            rejections.append({"item": r["item"], "stage": "dedup", "layer": "dedup",
                               "reason": f"{kind} duplicate of item {accepted[j]['item']}"})
        else:
            kept.append(r)
    # Branches can coincide across items (the same off-topic question): exact-dedup the records too.
    records, seen, outputs = [], set(), []
    for r in kept:
        keep_outs = []
        for o in r["outputs"]:
            rec = RoutingRecord(**o["record"])
            key = (normalise(rec.text), rec.label)
            if key in seen:
                rejections.append({"item": r["item"], "stage": "dedup", "layer": "dedup",
                                   "reason": f"exact duplicate record ({o['branch']})"})
                continue
            seen.add(key)
            records.append(rec)
            keep_outs.append(o)
            outputs.append(o)
        r["outputs"] = keep_outs

    if not records:
        atomic_write_jsonl(run_dir / "rejections.jsonl", rejections)
        top = next(iter(histogram(_reason_kind(f"{x.get('stage')}: {x.get('reason', '')}") for x in rejections)), "")
        raise NoRecords(f"no records: all {len(results)} of {n} items were rejected (most often: {top}); "
                        f"the reasons are in {run_dir / 'rejections.jsonl'}")

    from router_lab.data.loaders.saved import save_records_jsonl

    save_records_jsonl(records, run_dir / "records.jsonl")
    scoring = cfg.get("scoring") or {}
    llm_names = [str(l["name"]) for l in scoring.get("llms") or []] if scoring.get("enabled") else []
    ds = records_to_dataset(records, llm_names=llm_names)
    atomic_save_dataset(ds, run_dir / "dataset")
    atomic_write_jsonl(run_dir / "rejections.jsonl", rejections)
    extra = recipe.finalize(kept, run_dir)

    events = Counter(recipe.prep_events)
    for r in results:
        events.update(r.get("events") or {})
    stats = client.stats.to_dict()
    prices = cfg.get("prices") or {}
    cost = 0.0
    for key, t in stats["tokens"].items():
        p = prices.get(key.split("/", 1)[1]) or {}
        cost += (t["prompt"] * float(p.get("input", 0)) + t["completion"] * float(p.get("output", 0))) / 1e6
    layers = Counter(x.get("layer") or x.get("stage") for r in results if r["status"] != "accepted"
                     for x in r.get("rejections", [])[-1:])
    layers["dedup"] = len(dup_of)
    summary = {
        "recipe": recipe.name, "backend": cfg.get("backend"), "seed": cfg.get("seed"),
        "items": {"planned": n, "done": len(results), "accepted": len(accepted), "rejected": len(results) - len(accepted),
                  "duplicates_removed": len(dup_of), "kept": len(kept)},
        "records": len(records),
        "stages": {**stats, "events": dict(events)},
        "rejections_by_layer": dict(layers),
        "rejection_reasons": histogram(_reason_kind(f"{x.get('stage')}: {x.get('reason', '')}") for x in rejections),
        "requests_sent": sum(stats["sent"].values()),
        "tokens_total": {"prompt": sum(t["prompt"] for t in stats["tokens"].values()),
                         "completion": sum(t["completion"] for t in stats["tokens"].values())},
        "cost_usd": round(cost, 6),
        "scoring_cost_usd": round(sum(sum((r.costs or {}).values()) for r in records), 6),
        "labels": histogram(r.label or "" for r in records),
        "branches": histogram(o["branch"] for o in outputs),
        "distinct_2": round(distinct_n(r.text for r in records), 4),
        "llm_names": llm_names,
        **extra,
    }
    _push(cfg, ds)
    return summary


def _push(cfg: dict, ds) -> None:
    repo = cfg.get("push_to_hub")
    if not repo:
        return
    token = os.environ.get(str(cfg.get("hf_token_env", "HF_TOKEN")))
    if not token:
        log.warning("synth.push_to_hub=%s but %s is not set: not pushed", repo, cfg.get("hf_token_env", "HF_TOKEN"))
        return
    ds.push_to_hub(str(repo), token=token, private=bool(cfg.get("hub_private", True)))


def format_summary(s: dict, run_dir: Path) -> str:
    rows = [("run dir", str(run_dir)), ("recipe / backend", f"{s['recipe']} / {s['backend']}")]
    rows += [(f"items {k}", str(v)) for k, v in s["items"].items()]
    rows += [("records", str(s["records"])), ("labels", str(len(s["labels"]))),
             ("branches", ", ".join(f"{k}={v}" for k, v in s["branches"].items())),
             ("requests (API, all sessions)", str(s.get("requests_sent", 0))),
             ("re-asked (invalid replies)", str(sum(s["stages"].get("reasked", {}).values()))),
             ("requests (cached)", str(sum(s["stages"]["cached"].values()))),
             ("scoring reused (same query)", str(s["stages"].get("shared", {}).get("scoring", 0))),
             ("retried", ", ".join(f"{k}={v}" for k, v in s["stages"]["retried"].items()) or "0"),
             ("invalid replies", str(sum(s["stages"]["invalid"].values()))),
             ("sessions", str(s["stages"].get("sessions", 1))),
             ("tokens in / out", f"{s['tokens_total']['prompt']} / {s['tokens_total']['completion']}"),
             ("cost (USD)", f"{s['cost_usd']:.4f} (+ scoring {s['scoring_cost_usd']:.4f})"),
             ("distinct-2", str(s["distinct_2"]))]
    rows += [(f"rejected: {k[:60]}", str(v)) for k, v in list(s["rejection_reasons"].items())[:8]]
    w = max(len(a) for a, _ in rows)
    return "\n".join(f"{a:<{w}}  {b}" for a, b in rows)
