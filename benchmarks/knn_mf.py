"""kNN and MF routers on split2 or the synthetic benchmark: kNN's k and weighting chosen on the
validation split only, MF over several seeds; acc_predict per test set (mean ± std) beside
the baselines. Prints markdown tables (paste into benchmarks/RESULTS.md).

    python benchmarks/knn_mf.py --data split2                     # frozen MiniLM, seeds 1 2 3
    python benchmarks/knn_mf.py --data split2 --encoder e5_small  # frozen multilingual-e5-small
    python benchmarks/knn_mf.py --data synthetic
    python benchmarks/knn_mf.py --data split2 --reuse             # re-read finished runs
    python benchmarks/knn_mf.py --data split2 --val-only          # the kNN grid on validation only (no test encoding)
    python benchmarks/knn_mf.py --data split2 --encoder e5_small --reuse --mf-grid model.dim=32,128 model.dropout=0.1,0.5
                                                                  # MF settings chosen on validation too

Each run is ``router_lab.train.train`` on the composed config of ``python -m router_lab.train
model={knn,mf} ...``, one after another in this process.
split2 validation is a held-out 10 % of the training files (``data.val=null``), never the
training data (a kNN router finds every training query itself). kNN: the grid
``--ks`` x ``--weightings`` runs once (seed 1; the index does not depend on the seed) and the
setting with the best ``val/score_best`` is reported; test figures of the other settings are
printed for transparency only, never used to choose. Runs go under
``outputs/benchmarks/knn_mf/<data>_<encoder>/``.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import compose, machine
from routerdc_split2 import ORDER as SPLIT2_ORDER

BASELINES = ["best_single", "best_per_task", "oracle"]
DATA = {
    "split2": ["data=split2", "llm_pool=split2_model7", "data.val=null"],
    "synthetic": [],
}



def run(name: str, overrides: list[str], out_root: Path, reuse: bool) -> dict:
    """One run of router_lab.train.train in this process (no interpreter start-up per run:
    on a loaded 2-core machine that start-up costs more than a kNN fit)."""
    from omegaconf import OmegaConf

    from router_lab.train import train

    run_dir = out_root / name
    if reuse and (run_dir / "metrics.json").exists():
        return json.loads((run_dir / "metrics.json").read_text())
    cfg = compose(["logger=none", "extras.print_config=false", *overrides], run_dir)
    t0 = time.perf_counter()
    metrics, _ = train(cfg)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    print(f"{name}: val {100 * metrics['val/score_best']:.2f}  "
          f"ID {100 * metrics.get('avg_in_distribution/router/acc_predict', float('nan')):.2f}  "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    return metrics


def val_only_grid(base: list[str], ks: list[int], weightings: list[str]) -> dict:
    """The kNN grid scored on the validation split only (acc_predict, as ``val/score`` is for
    this data), without training runs or test sets: the data module's fit stage (train +
    validation embeddings), one index, every (k, weighting). Chooses the same way as the
    full grid; nothing of the test sets is encoded or read."""
    import hydra
    import numpy as np
    import torch

    from router_lab import metrics as M
    from router_lab.train import build_datamodule

    cfg = compose(["logger=none", "extras.print_config=false", *base, "model=knn"], REPO / "outputs" / "tmp")
    dm = build_datamodule(cfg)
    dm.setup("fit")
    tr, va = dm.train_set, dm.val_set
    overlap = len({r.query for r in tr.records} & {r.query for r in va.records})
    print(f"train {len(tr)} rows, validation {len(va)} rows; validation texts also in train: {overlap}")
    eff = tr.effective_scores()
    mask = ~np.isnan(eff)
    out = {}
    for w in weightings:
        for k in ks:
            model = hydra.utils.instantiate(cfg.model, data_info=dm.info(), k=k, weighting=w, _convert_="all")
            model.set_index(torch.as_tensor(tr.embeddings), torch.as_tensor(np.nan_to_num(eff)), torch.as_tensor(mask))
            with torch.no_grad():
                util = model.predict_scores(torch.as_tensor(va.embeddings)).numpy()
            out[(k, w)] = M.acc_predict(util.argmax(1), va.scores, va.score_types)
            print(f"k={k} {w}: validation acc_predict {100 * out[(k, w)]:.2f}", flush=True)
    best = max(out, key=lambda kw: out[kw])
    print(f"chosen on validation: k={best[0]}, {best[1]} ({100 * out[best]:.2f})")
    return out


def pct(m: dict, key: str) -> float:
    return 100 * m.get(key, float("nan"))


def mean_std(vals: list[float]) -> str:
    return f"{np.mean(vals):.2f} ± {np.std(vals):.2f}" if len(vals) > 1 else f"{vals[0]:.2f}"


def mf_name(settings: tuple[str, ...], seed: int) -> str:
    """Run folder of an MF setting: mf_dim32_dropout0.5_seed1 (mf_seed1 for the defaults)."""
    parts = [f"{k.split('.')[-1]}{v}" for k, v in (c.split("=", 1) for c in settings)]
    return "_".join(["mf", *parts, f"seed{seed}"])


def main() -> None:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", choices=list(DATA), default="split2")
    ap.add_argument("--encoder", default="minilm")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--ks", type=int, nargs="+", default=[5, 10, 20, 50, 100, 200])
    ap.add_argument("--weightings", nargs="+", default=["uniform", "distance"])
    ap.add_argument("--overrides", nargs="*", default=[])
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--tag", default="", help="suffix of the output folder (a variant's runs)")
    ap.add_argument("--skip-mf", action="store_true")
    ap.add_argument("--mf-grid", nargs="*", default=[], metavar="KEY=V1,V2",
                    help="MF settings to choose from on validation (first seed), e.g. model.dim=32,128 "
                         "model.dropout=0.1,0.3; the chosen one then runs on every seed")
    ap.add_argument("--val-only", action="store_true", help="score the kNN grid on validation only (no test sets)")
    args = ap.parse_args()
    out_root = REPO / "outputs" / "benchmarks" / "knn_mf" / f"{args.data}_{args.encoder}{args.tag}"
    base = [*DATA[args.data], f"encoder={args.encoder}", "encoder.frozen=true", *args.overrides]
    t0 = time.perf_counter()
    if args.val_only:
        val_only_grid(base, args.ks, args.weightings)
        print(f"{time.perf_counter() - t0:.0f} s; {machine()}")
        return

    grid = {}
    for w in args.weightings:
        for k in args.ks:
            grid[(k, w)] = run(f"knn_k{k}_{w}", [*base, "model=knn", f"model.k={k}", f"model.weighting={w}",
                                                 f"seed={args.seeds[0]}"], out_root, args.reuse)
    best = max(grid, key=lambda kw: grid[kw]["val/score_best"])
    mf_grid, mf_best = {}, ()
    if args.mf_grid and not args.skip_mf:
        axes = [[f"{kv.split('=', 1)[0]}={v}" for v in kv.split("=", 1)[1].split(",")] for kv in args.mf_grid]
        for combo in itertools.product(*axes):
            name = mf_name(combo, args.seeds[0])
            mf_grid[combo] = run(name, [*base, "model=mf", *combo, f"seed={args.seeds[0]}"], out_root, args.reuse)
        mf_best = max(mf_grid, key=lambda c: mf_grid[c]["val/score_best"])
    mf = [] if args.skip_mf else [run(mf_name(mf_best, s), [*base, "model=mf", *mf_best, f"seed={s}"], out_root,
                                      args.reuse)
                                  for s in args.seeds]

    print(f"\n{args.data}, frozen {args.encoder}; {machine()}; {time.perf_counter() - t0:.0f} s in all")
    print("\nkNN grid (selection by validation acc_predict; test shown, not used):\n")
    print("| k | weighting | val | test ID avg | test OOD avg |\n|---:|---|---:|---:|---:|")
    for (k, w), m in grid.items():
        mark = " **(chosen)**" if (k, w) == best else ""
        print(f"| {k} | {w}{mark} | {pct(m, 'val/score_best'):.2f} | "
              f"{pct(m, 'avg_in_distribution/router/acc_predict'):.2f} | "
              f"{pct(m, 'avg_out_of_distribution/router/acc_predict'):.2f} |")

    if mf_grid:
        print("\nMF grid (seed %d; selection by validation acc_predict; test shown, not used):\n" % args.seeds[0])
        print("| setting | val | test ID avg | test OOD avg |\n|---|---:|---:|---:|")
        for combo, m in sorted(mf_grid.items(), key=lambda cm: -cm[1]["val/score_best"]):
            mark = " **(chosen)**" if combo == mf_best else ""
            print(f"| {' '.join(combo)}{mark} | {pct(m, 'val/score_best'):.2f} | "
                  f"{pct(m, 'avg_in_distribution/router/acc_predict'):.2f} | "
                  f"{pct(m, 'avg_out_of_distribution/router/acc_predict'):.2f} |")

    knn = grid[best]
    ref = mf[0] if mf else knn
    names = SPLIT2_ORDER if args.data == "split2" else sorted(
        {k.split("/")[0] for k in ref if k.endswith("/router/acc_predict")}, key=lambda s: (s.startswith("avg"), s))
    names = [(n, n) if isinstance(n, str) else n for n in names]
    print(f"\nacc_predict (%): kNN (k={best[0]}, {best[1]}, chosen on validation), MF mean ± std over seeds "
          f"{args.seeds}\n")
    print("| dataset | kNN | MF | " + " | ".join(BASELINES) + " |\n|---|---:|---:|" + "---:|" * len(BASELINES))
    for key, label in names:
        if f"{key}/router/acc_predict" not in ref:
            continue
        bold = "**" if key.startswith("avg_") else ""
        cells = [f"{pct(knn, f'{key}/router/acc_predict'):.2f}",
                 mean_std([pct(m, f"{key}/router/acc_predict") for m in mf]) if mf else ""]
        cells += [f"{pct(ref, f'{key}/{b}/acc_predict'):.2f}" for b in BASELINES]
        print(f"| {bold}{label}{bold} | " + " | ".join(f"{bold}{c}{bold}" if i < 2 else c for i, c in enumerate(cells))
              + " |")
    summary = {"knn_best": {"k": best[0], "weighting": best[1]}, "knn": knn, "mf": mf, "mf_best": list(mf_best),
               "grid": {f"{k}_{w}": m for (k, w), m in grid.items()}}
    (out_root / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
