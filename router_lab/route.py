"""Route queries with a trained router: single, interactive, batch, evaluate.

    python -m router_lab.route router=outputs/export/my_router query="'What is 2+2?'"      # single
    echo 'Any text, with "quotes", commas: and all' | python -m router_lab.route router=DIR query=-
    python -m router_lab.route router=DIR mode=interactive                                 # prompt loop
    python -m router_lab.route router=DIR mode=batch input=queries.jsonl output=decisions.jsonl [on_error=stop]
    python -m router_lab.route router=DIR mode=evaluate input=test.jsonl out=outputs/route/eval
    python -m router_lab.route router=DIR mode=evaluate input=../shared/data/clinc150/clinc150_train_val.json \
        loader=clinc150 loader.label=intent

``router`` is an export dir (python -m router_lab.export), a run dir or a .ckpt in one. The
options are Hydra overrides of ``conf/route.yaml`` (``--help`` lists them, ``-m`` sweeps):
Hydra reads ``, ' " [ ] { } ( ) = :`` specially, so quote free text (``query="'a, b'"``:
the shell passes ``query='a, b'`` and Hydra strips its quotes) or read it from stdin with
``query=-``. ``route_map=YAML`` adds a policy (confidence threshold -> fallback LLM,
category -> LLM) and endpoints.

batch: each input line is a JSON object with ``query`` (text) or ``conversation`` /
``messages`` (a list of {role, content}); optional ``id``. Each output line is
``{"line", "id", "llm", "confidence", "scores", "fallback", "cost", ...}``, written as each
chunk of ``batch_size`` lines is routed, so the input is never held in memory. A bad line
(not JSON, no query) is reported with its line number on stderr; ``on_error=skip`` (default)
goes on, ``on_error=stop`` stops after writing every line routed before it (exit 2).

evaluate: a records file (JSONL/JSON/CSV/Parquet, router_lab's table format: ``query``,
``label`` and/or ``scores`` {llm: score}, optional ``costs``) -> accuracy (category accuracy
for labelled data, else "chose a best LLM"), ``acc_predict`` (mean score of the chosen LLM),
mean cost, a per-class report and a confusion matrix, printed and written to ``out``
(``report.txt``, ``metrics.json``, ``confusion.png``). ``loader=NAME`` (``conf/loader/``)
reads ``input`` with another of router_lab's loaders, ``loader.ARG=value`` setting its
arguments. For a category router, records whose label is none of its categories
are out of scope: it reports in-scope accuracy (right category and not falling back) and
out-of-scope recall (fell back), besides top-1 category accuracy ignoring the threshold.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO, Iterator, TextIO

from router_lab.config_schema import RouteConfig
from router_lab.errors import UserError, hydra_cli, run_main
from router_lab.files import check_output_is_not_input, write_atomic

log = logging.getLogger("router_lab.route")

# ------------------------------------------------------------------ modes

def format_decision(d) -> str:
    top = sorted(d.scores.items(), key=lambda kv: -kv[1])
    scores = "  ".join(f"{n}={s:.3f}" for n, s in top)
    extra = (" (fallback)" if d.fallback else "") + (f" category={d.category}" if d.category else "") + \
            (f" cost={d.cost:g}" if d.cost is not None else "") + (" [truncated]" if d.truncated else "")
    line = f"-> {d.llm or 'no LLM'}  confidence={d.confidence:.3f}{extra}"
    return line + (f"\n   scores: {scores}" if scores else "")


def run_single(router, query: str, out: TextIO | None = None) -> dict:
    out = out or sys.stdout
    d = router.route(query)
    out.write(json.dumps(d.to_dict(), indent=2) + "\n")
    return d.to_dict()


def run_interactive(router, inp: TextIO | None = None, out: TextIO | None = None) -> int:
    """Prompt loop until EOF (Ctrl-D) or Ctrl-C; returns the number of routed queries."""
    inp, out = inp or sys.stdin, out or sys.stdout
    n = 0
    interactive = inp.isatty()
    out.write(f"router: {router.target} over {len(router.llm_names)} LLMs. Type a query; Ctrl-D or Ctrl-C quits.\n")
    # Bytes, decoded line by line: input that is not UTF-8 is one bad line, not the end.
    raw_in = getattr(inp, "buffer", None)
    while True:
        try:
            if interactive:
                line = input("query> ")
            else:
                out.write("query> ")
                out.flush()
                line = raw_in.readline() if raw_in is not None else inp.readline()
                if not line:
                    raise EOFError
                if isinstance(line, bytes):
                    line = line.decode("utf-8")
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return n
        except UnicodeDecodeError as e:
            out.write(f"error: the query is not valid UTF-8 (byte 0x{e.object[e.start]:02x}); expected text\n")
            out.flush()
            continue
        line = line.strip()
        if not line:
            continue
        try:
            out.write(format_decision(router.route(line)) + "\n")
            n += 1
        except UserError as e:
            out.write(f"error: {e}\n")
        out.flush()


def _jsonl_query(raw: str | bytes) -> tuple[Any, Any, str | None]:
    """(id, query or conversation, None) for a good line, or (None, None, what is wrong)."""
    if isinstance(raw, bytes):  # a file opened in binary: each line decoded on its own
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            return None, None, f"not valid UTF-8 (byte 0x{e.object[e.start]:02x} at column {e.start + 1})"
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        return None, None, f"not JSON ({e.msg} at column {e.colno})"
    except RecursionError:
        return None, None, "JSON nested too deeply"
    if not isinstance(obj, dict):
        return None, None, f"a JSON {type(obj).__name__}; expected an object with 'query' or 'conversation'"
    q = obj.get("query")
    if q is None:
        q = obj.get("conversation") or obj.get("messages")
    if isinstance(q, str) and q.strip() or isinstance(q, list) and q:
        return obj.get("id"), q, None
    return None, None, "no non-empty 'query' (text) or 'conversation'/'messages' (list of turns)"


def iter_jsonl_queries(f: TextIO | BinaryIO, on_error: str, errors: list) -> Iterator[tuple[int, Any, Any]]:
    """(line number, id, query or conversation) per good line; bad lines (not UTF-8, not
    JSON, no query) are reported (and counted in ``errors``), then skipped or stop the stream."""
    for n, raw in enumerate(f, 1):
        if not raw.strip():
            continue
        rid, q, problem = _jsonl_query(raw)
        if problem is None:
            yield n, rid, q
            continue
        msg = f"{f.name if hasattr(f, 'name') else 'input'}: line {n}: {problem}"
        errors.append(msg)
        print(f"error: {msg}", file=sys.stderr, flush=True)
        if on_error == "stop":
            return  # the caller still writes every line routed before this one


def run_batch(router, opts: RouteConfig) -> dict:
    from router_lab.api import iter_chunks

    if not opts.input or not opts.output:
        raise UserError("mode=batch needs input=FILE.jsonl and output=FILE.jsonl")
    src = Path(opts.input)
    if not src.is_file():
        raise UserError(f"input={src}: no such file; expected a JSONL file of queries")
    dst = Path(opts.output)
    check_output_is_not_input(dst, [src])
    if dst.is_dir():
        raise UserError(f"output={dst} is a directory; expected a file path for the JSONL decisions")
    dst.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    routed, t0 = 0, time.perf_counter()
    stopped = False
    # Binary: a line that is not UTF-8 is one bad line, not the end of the file.
    with src.open("rb") as f, dst.open("w", encoding="utf-8") as w:
        items = iter_jsonl_queries(f, opts.on_error, errors)
        chunks = iter_chunks(items, max(1, opts.batch_size))
        for chunk in chunks:
            routed += _route_chunk(router, chunk, w, errors, opts.on_error == "stop")
            w.flush()
        stopped = opts.on_error == "stop" and bool(errors)
    secs = time.perf_counter() - t0
    summary = {"routed": routed, "errors": len(errors), "seconds": round(secs, 3), "output": str(dst)}
    print(json.dumps(summary), file=sys.stderr)
    if stopped:
        raise UserError(f"{errors[0]} (stopped; the {routed} lines before it are in {dst})")
    return summary


def _route_chunk(router, chunk, w: TextIO, errors: list, stop: bool) -> int:
    try:
        decisions = router.route_batch([q for _, _, q in chunk])
    except UserError:
        # One bad query (e.g. a conversation with no content): route one by one to find it.
        decisions = []
        for n, _, q in chunk:
            try:
                decisions.append(router.route(q))
            except UserError as e:
                msg = f"line {n}: {e}"
                errors.append(msg)
                print(f"error: {msg}", file=sys.stderr, flush=True)
                decisions.append(None)
    written = 0
    for (n, rid, _), d in zip(chunk, decisions):
        if d is None:
            if stop:
                break
            continue
        w.write(json.dumps({"line": n, "id": rid, **d.to_dict()}, ensure_ascii=False) + "\n")
        written += 1
    return written


# ------------------------------------------------------------------ evaluate

def evaluate_records(router, records, out_dir: Path | None = None, batch_size: int = 64, name: str = "data") -> dict:
    """Route labelled / scored records; metrics, per-class report and confusion matrix; in
    ``out_dir`` metrics.json and predictions.jsonl as ``router_lab.results`` writes them, with
    the records as the test set ``name``."""
    import numpy as np
    from sklearn.metrics import classification_report, confusion_matrix

    from router_lab import metrics as M
    from router_lab.api import iter_chunks

    from tqdm.auto import tqdm

    texts = [r.text for r in records]
    decisions = []
    with tqdm(total=len(texts), desc="routing", unit="query", disable=len(texts) <= batch_size) as bar:
        for chunk in iter_chunks(texts, batch_size):
            decisions += router.route_batch(chunk)
            bar.update(len(chunk))
    names = router.llm_names
    res: dict[str, Any] = {"n": len(records)}
    # LLM metrics need an LLM for every query (a category router without a route map has none)
    has_scores = all(r.scores for r in records) and records and all(d.llm is not None for d in decisions)
    chosen = np.array([names.index(d.llm) for d in decisions]) if has_scores else None
    if has_scores:
        scores = np.array([[r.scores.get(n, np.nan) for n in names] for r in records], dtype=float)
        types_ = [r.score_type for r in records]
        res["acc_predict"] = M.acc_predict(chosen, scores, types_)
        res["acc"] = M.routing_accuracy(chosen, scores)
        if all(r.costs for r in records):
            costs = np.array([[r.costs.get(n, np.nan) for n in names] for r in records], dtype=float)
            res["cost"] = M.mean_cost(chosen, costs)
        elif router.llm_costs:
            res["cost"] = float(np.mean([d.cost for d in decisions]))
    res["fallback_rate"] = float(np.mean([d.fallback for d in decisions])) if decisions else 0.0
    labelled = [i for i, r in enumerate(records) if r.label]
    if labelled and router.categories and any(records[i].label in router.categories for i in labelled):
        # category classification (classifier routers on labelled data); accuracy: top-1
        # category on the records whose label the router knows, whatever the threshold
        classes = list(router.categories)
        known = set(classes)
        inside = [i for i in labelled if records[i].label in known]
        res["accuracy"] = float(np.mean([decisions[i].category == records[i].label for i in inside]))
        true = [records[i].label for i in labelled]
        pred = [decisions[i].category or "?" for i in labelled]
        what = "category"
        if router.label_router:
            # Labels the router does not know are out of scope: right = it fell back.
            outside = [i for i in labelled if records[i].label not in known]
            oos_names = sorted({records[i].label for i in outside})
            oos = oos_names[0] if len(oos_names) == 1 else "out_of_scope"
            res["in_scope_accuracy"] = float(np.mean([not decisions[i].fallback and
                                                      decisions[i].category == records[i].label for i in inside]))
            if outside:
                flagged = [i for i in labelled if decisions[i].fallback]
                res["n_out_of_scope"] = len(outside)
                res["oos_recall"] = float(np.mean([decisions[i].fallback for i in outside]))
                if flagged:
                    res["oos_precision"] = float(np.mean([records[i].label not in known for i in flagged]))
            true = [t if t in known else oos for t in true]
            pred = [oos if decisions[i].fallback else p for i, p in zip(labelled, pred)]
            classes.append(oos)
    elif has_scores:
        # which LLM: a best LLM of each query (first among ties) vs the chosen one
        eff = M.effective_scores(scores, types_)
        classes = list(names)
        true = [names[int(np.nanargmax(row))] for row in eff]
        pred = [d.llm for d in decisions]
        res["accuracy"] = res["acc"]
        what = "best LLM"
    else:
        raise UserError("evaluate: the records have neither labels the router knows nor per-LLM scores; "
                        f"expected 'label' (one of {router.categories[:5]}...) or 'scores'")
    labels = sorted(set(true) | set(pred), key=lambda c: classes.index(c) if c in classes else len(classes))
    report = classification_report(true, pred, labels=labels, zero_division=0, digits=3)
    cm = confusion_matrix(true, pred, labels=labels)
    summary = _summary_text(res, what)
    text = summary + "\n\nper-class report (" + what + "):\n" + report + \
        "\nconfusion matrix (rows: true, columns: predicted):\n" + _cm_text(cm, labels)
    if len(labels) > 30:  # e.g. 150 intents: the summary on screen, the rest in report.txt
        print(f"{summary}\n({len(labels)} classes: the per-class report and confusion matrix are in report.txt)")
    else:
        print(text)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        from router_lab.results import decision_rows, write_metrics

        write_atomic(out_dir / "report.txt", text + "\n")
        cats = list(router.categories or [])
        out = {"chosen": np.array([names.index(d.llm) if d.llm in names else -1 for d in decisions]),
               "scores": scores if has_scores else np.zeros((len(records), 0)),
               "confidence": np.array([d.confidence for d in decisions], dtype=float),
               "fallback": np.array([d.fallback for d in decisions], dtype=bool)}
        if cats:
            out["label"] = np.array([cats.index(r.label) if r.label in cats else -1 for r in records])
            out["pred_label"] = np.array([cats.index(d.category) if d.category in cats else -1 for d in decisions])
        rows = decision_rows(name, out, records, names, cats)
        write_atomic(out_dir / "predictions.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        _cm_png(cm, labels, out_dir / "confusion.png", what)
        write_metrics({f"{name}/router/{k}": v for k, v in res.items()}, out_dir / "metrics.json")
        print(f"\nwrote {out_dir}/report.txt, metrics.json, predictions.jsonl, confusion.png")
    return res


SUMMARY_LABELS = {
    "acc_predict": "mean score of the chosen LLM (RouterDC's acc_predict)",
    "acc": "share of queries routed to a best-scoring LLM (ties count)",
    "cost": "mean cost per query",
    "fallback_rate": "share of queries sent to the fallback",
    "in_scope_accuracy": "in-scope accuracy: right category and not flagged out of scope",
    "oos_recall": "out-of-scope recall: out-of-scope queries flagged",
    "oos_precision": "out-of-scope precision: flagged queries that are out of scope",
}


def _summary_text(res: dict, what: str) -> str:
    """One labelled line per metric, so the accuracies can't be confused."""
    rows = [("n", str(res["n"]), "queries")]
    acc_label = ("top-1 predicted category == the record's label (known labels, no threshold)" if what == "category"
                 else SUMMARY_LABELS["acc"])
    if not (what == "best LLM" and "acc" in res):  # then accuracy is acc: printed once, below
        rows.append((f"accuracy ({what})", f"{res['accuracy']:.4f}", acc_label))
    for k in ("in_scope_accuracy", "oos_recall", "oos_precision", "acc_predict", "acc", "cost", "fallback_rate"):
        if k in res:
            rows.append((k, f"{res[k]:.4f}", SUMMARY_LABELS[k]))
    w = max(len(r[0]) for r in rows)
    return "\n".join(f"{k:<{w}}  {v:>8}  {label}" for k, v, label in rows)


def _cm_text(cm, labels) -> str:
    short = [l[:14] for l in labels]
    w = max(6, *(len(s) for s in short))
    head = " " * w + " " + " ".join(f"{s:>{w}}" for s in short)
    rows = [f"{s:>{w}} " + " ".join(f"{v:>{w}d}" for v in row) for s, row in zip(short, cm)]
    return "\n".join([head, *rows])


def _cm_png(cm, labels, path: Path, what: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    fig, ax = plt.subplots(figsize=(min(30, max(4, 0.5 * n + 2)), min(30, max(3.5, 0.5 * n + 1.5))))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=6)
    ax.set_xlabel(f"predicted {what}")
    ax.set_ylabel(f"true {what}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_evaluate(router, opts: RouteConfig) -> dict:
    if not opts.input:
        raise UserError("mode=evaluate needs input=FILE (records with 'query' and 'label' and/or 'scores')")
    records = load_eval_records(router, opts.input, opts.loader)
    out = Path(opts.out) if opts.out else Path("outputs") / "route" / (time.strftime("eval-%Y%m%d-%H%M%S")
                                                                       + f"-{os.getpid()}")
    check_output_is_not_input(out, [opts.input], "out")
    return evaluate_records(router, records, out, opts.batch_size)


def load_eval_records(router, data: str, loader: Any = None) -> list:
    """Held-out records for evaluate / calibrate: ``data`` read by ``loader`` (a
    ``conf/loader`` config: ``name`` and the loader's arguments; default the table loader);
    a scored table is checked against (and ordered by) the router's pool."""
    from router_lab.data.sources import resolve_loader

    args = loader.model_dump() if hasattr(loader, "model_dump") else dict(loader or {"name": "table"})
    name = args.pop("name")
    spec = {"loader": name, "path": data, **args}
    if name == "table" and "llm_names" not in spec and not router.label_router and _has_scores_column(data):
        spec["llm_names"] = router.llm_names
    fn, kwargs = resolve_loader(spec, where=f"input={data} (loader={name})")
    return fn(**kwargs)


def _has_scores_column(path: str) -> bool:
    # A label-only table must not be checked against the pool.
    p = Path(path)
    if p.suffix in (".jsonl", ".ndjson") and p.is_file():
        with p.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    try:
                        return "scores" in json.loads(line)
                    except json.JSONDecodeError:
                        return True
    return True


# ------------------------------------------------------------------ entry point

def route(opts: RouteConfig) -> Any:
    from router_lab.api import Router

    if not opts.router:
        raise UserError("expected router=PATH (an export dir, a run dir or a .ckpt)")
    query = sys.stdin.read() if opts.mode == "single" and opts.query == "-" else opts.query
    if opts.mode == "single" and not (query or "").strip():
        raise UserError("mode=single needs a non-empty query=\"'...'\" (or query=- to read it from stdin)")
    if opts.mode == "batch" and opts.input and opts.output:  # before anything is opened or loaded
        check_output_is_not_input(opts.output, [opts.input])
    if opts.threads > 0:
        import torch

        torch.set_num_threads(opts.threads)
    router = Router.load(opts.router, route_map=opts.route_map or None, quantize=opts.quantize or None,
                         runtime=opts.runtime)
    if opts.mode == "single":
        return run_single(router, query)
    if opts.mode == "interactive":
        return run_interactive(router)
    if opts.mode == "batch":
        return run_batch(router, opts)
    return run_evaluate(router, opts)


@hydra_cli("route", schema=RouteConfig, options=True)
def main(opts: RouteConfig) -> Any:
    from router_lab import console

    console.configure()
    return run_main(route, opts)


if __name__ == "__main__":
    main()
