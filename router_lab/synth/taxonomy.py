"""Route taxonomy: domain -> intents, the domain-action pairs the Arch-Router recipe starts from.

    load_taxonomy("clinc150", "../shared/data/clinc150/domains.json")  # CLINC150's 10 domains x 15 intents
    load_taxonomy("file", "my_routes.json")                             # {domain: [intent, ...]} (JSON or YAML)
    load_taxonomy("builtin")                                            # small, offline, always there
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from router_lab.synth.backends import SynthConfigError

BUILTIN_TAXONOMY: dict[str, list[str]] = {
    "banking": ["transfer", "balance", "freeze_account", "report_fraud"],
    "travel": ["book_flight", "book_hotel", "travel_alert", "lost_luggage"],
    "coding": ["debug_error", "explain_code", "write_tests", "code_review"],
    "health": ["find_doctor", "symptom_check", "medication_info"],
    "home": ["set_timer", "smart_lights", "shopping_list", "play_music"],
    "writing": ["summarize", "translate", "proofread", "draft_email"],
}


def load_taxonomy(source: str = "auto", path: str | None = None, max_domains: int | None = None,
                  max_intents_per_domain: int | None = None) -> dict[str, list[str]]:
    """``auto``: the file at ``path`` when it exists, else the built-in taxonomy."""
    if source == "auto":
        source = "file" if path and Path(path).is_file() else "builtin"
    if source == "builtin":
        tax = {d: list(v) for d, v in BUILTIN_TAXONOMY.items()}
    elif source in ("file", "clinc150"):
        tax = _read(path)
    else:
        raise SynthConfigError(f"synth.taxonomy.source is {source!r}; expected auto, builtin, clinc150 or file")
    domains = sorted(tax)[:max_domains] if max_domains else sorted(tax)
    return {d: list(tax[d])[:max_intents_per_domain] if max_intents_per_domain else list(tax[d]) for d in domains}


def _read(path: str | None) -> dict[str, list[str]]:
    if not path:
        raise SynthConfigError("synth.taxonomy.path is empty; expected a JSON/YAML file {domain: [intent, ...]}")
    p = Path(path)
    if not p.is_file():
        raise SynthConfigError(f"{p}: no such file; expected a taxonomy {{domain: [intent, ...]}} (synth.taxonomy.path)")
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            obj: Any = yaml.safe_load(p.read_text(encoding="utf-8"))
        else:
            obj = json.loads(p.read_text(encoding="utf-8"))
    except Exception as e:  # noqa: BLE001 - any parse error is the user's file
        raise SynthConfigError(f"{p}: cannot parse ({type(e).__name__}: {e}); expected {{domain: [intent, ...]}}") from None
    if not isinstance(obj, dict) or not obj or not all(
        isinstance(v, list) and v and all(isinstance(i, str) for i in v) for v in obj.values()
    ):
        raise SynthConfigError(f"{p}: expected a non-empty mapping {{domain: [intent, ...]}} of strings")
    return {str(k): [str(i) for i in v] for k, v in obj.items()}


def route_pairs(taxonomy: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Domain-action pairs in a stable order."""
    return [(d, i) for d in sorted(taxonomy) for i in taxonomy[d]]
