"""``python -m router_lab.synth [overrides]``: generate a synthetic routing dataset.

    python -m router_lab.synth                                          # arch_router, offline
    python -m router_lab.synth synth=agent_tools synth.n_items=100
    GROQ_API_KEY=... python -m router_lab.synth synth.backend=groq
    python -m router_lab.synth synth.backend=openai synth.base_url=http://localhost:8000/v1 \
        'synth.stages.policy.models=[{model: my-model, weight: 1}]'     # vLLM / Ollama / llama.cpp
    python -m router_lab.synth synth.resume_dir=outputs/synth/runs/<dir>  # continue a killed run
"""
from __future__ import annotations

import sys

from omegaconf import DictConfig, OmegaConf

import router_lab  # noqa: F401 - registers the router_lab_root resolver
from router_lab.errors import hydra_cli, run_main
from router_lab.synth.run import run_synth


def generate(cfg: DictConfig) -> dict:
    synth = OmegaConf.to_container(cfg.synth, resolve=True)
    run_dir = synth.get("resume_dir") or cfg.paths.output_dir
    try:
        return run_synth(synth, run_dir)
    except KeyboardInterrupt:
        print(f"error: interrupted; finished items are in {run_dir}/items.jsonl: rerun with "
              f"synth.resume_dir={run_dir} to continue", file=sys.stderr, flush=True)
        sys.exit(130)


@hydra_cli("synth")
def main(cfg: DictConfig) -> None:
    run_main(generate, cfg)


if __name__ == "__main__":
    main()
