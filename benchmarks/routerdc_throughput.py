"""Training throughput (samples/s) of RouterDC fine-tuning MiniLM on CPU: dynamic padding
(pad to the longest query of the batch, the datamodule's default) vs padding to max length.

    python benchmarks/routerdc_throughput.py                       # batch 32, 3 timed steps per mode
    python benchmarks/routerdc_throughput.py --batch-size 64 --steps 5 --max-length 512

Each step is a full training step of the real module (forward, dual contrastive losses,
backward, AdamW) on random batches of split2 training queries (the same batches for both
modes). Reports samples/s and the mean padded length.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from router_lab.data.datamodule import Collate
from router_lab.data.loaders.routerdc import load_routerdc_json
from router_lab.encoders import EncoderSpec, load_tokenizer
from router_lab.models.routerdc import RouterDC

FILES = ["mmlu_train", "gsm8k-train", "cmmlu_train", "arc_challenge_train", "humaneval_train"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="folder holding routerdc/ (default ../shared/data)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    from pathlib import Path

    torch.set_num_threads(args.threads)
    data = Path(args.data_dir) if args.data_dir else Path(__file__).resolve().parents[2] / "shared" / "data"
    records = [r for f in FILES for r in load_routerdc_json(data / "routerdc" / "split2_model7_cluster" / f"{f}.json",
                                                            n_items=1000)]
    names = list(records[0].scores)
    spec = EncoderSpec(name="minilm", pretrained="package:minilm", pooling="mean", max_length=args.max_length,
                       frozen=False)
    tok = load_tokenizer(spec)
    torch.manual_seed(0)
    model = RouterDC({"llm_names": names, "has_scores": True, "has_cluster_ids": True}, spec.to_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
    rng = np.random.default_rng(0)
    batches = [rng.choice(len(records), args.batch_size, replace=False) for _ in range(args.steps + 1)]

    def make(idx, pad_max):
        items = [{"scores": torch.tensor([records[i].scores[n] for n in names]),
                  "score_mask": torch.ones(len(names), dtype=torch.bool), "cluster_id": records[i].cluster_id,
                  "task_id": 0, "text": records[i].text} for i in idx]
        return Collate(tok, args.max_length, pad_max)(items)

    print(f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"batch {args.batch_size}, max_length {args.max_length}, {args.steps} timed steps (+1 warm-up)")
    print("| padding | samples/s | s/step | mean padded length |\n|---|---:|---:|---:|")
    for label, pad_max in (("dynamic", False), ("max_length", True)):
        model.train()
        times, lengths = [], []
        for k, idx in enumerate(batches):
            batch = make(idx, pad_max)
            t0 = time.perf_counter()
            loss = model.losses(batch)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            if k:  # the first step warms up
                times.append(time.perf_counter() - t0)
                lengths.append(batch["input_ids"].shape[1])
        s = float(np.mean(times))
        print(f"| {label} | {args.batch_size / s:.2f} | {s:.2f} | {np.mean(lengths):.0f} |", flush=True)


if __name__ == "__main__":
    main()
