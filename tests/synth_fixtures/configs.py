"""Small generator configs for tests and benchmarks, composed from the real Hydra config."""
from __future__ import annotations

from typing import Any

import router_lab  # noqa: F401 - registers the router_lab_root resolver
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from router_lab import CONF_DIR


def synth_cfg(recipe: str = "arch_router", overrides: list[str] | None = None, **updates: Any) -> dict:
    """``conf/synth/<recipe>.yaml`` as a plain dict, small and quiet, with ``updates`` applied
    (a dict value is merged one level deep)."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("synth", overrides=[f"synth={recipe}", *(overrides or [])])
    synth = OmegaConf.to_container(cfg.synth, resolve=True)
    synth.update(progress=False, print_summary=False)
    if recipe == "arch_router":
        synth["taxonomy"].update(source="builtin", max_domains=3, max_intents_per_domain=2)
    for k, v in updates.items():
        if isinstance(v, dict) and isinstance(synth.get(k), dict):
            synth[k] = {**synth[k], **v}
        else:
            synth[k] = v
    return synth


def loopback_updates(backend: str, server, timeout_s: float = 0.5) -> dict:
    """Point a config at a :class:`LoopbackLLM` (or its base URL) through the real SDK client of ``backend``."""
    if isinstance(server, str):
        base_url = server
    else:
        base_url = server.groq_base_url if backend == "groq" else server.openai_base_url
    return dict(backend=backend, api_key_env="SYNTH_TEST_API_KEY", base_url=base_url,
                request_timeout_s=timeout_s,
                retry={"max_attempts": 6, "base_delay_s": 0.02, "max_delay_s": 0.5, "jitter": 0.5},
                judge={"threshold": 0.4, "max_regenerations": 2})
