"""Check a sweep's overrides before launching anything: one line per problem, exit 2.

    python experiments/check_overrides.py model=classifier,routerdc encoder=minilm seed=1,2,3

Composes the train config once per value of every swept key (the others at their first
value), so an unknown config group (``modle=x``), an unknown option (``model=nope``) or a
bad key fails here in one line instead of half-way through a sweep.
"""
from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

import router_lab  # noqa: F401  (registers resolvers)
from router_lab import CONF_DIR


def groups() -> list[str]:
    return sorted(p.name for p in Path(CONF_DIR).iterdir() if p.is_dir())


def explain(override: str, err: Exception) -> str:
    key = override.lstrip("+~").split("=", 1)[0]
    value = override.split("=", 1)[1] if "=" in override else ""
    group_dir = Path(CONF_DIR) / key
    msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "/" not in key and "." not in key and not group_dir.is_dir() and "Could not override" in msg:
        return (f"override '{override}': '{key}' is not a config group ({', '.join(groups())}) nor a key of "
                f"train.yaml")
    if group_dir.is_dir() and ("Could not find" in msg or "Could not load" in msg):
        opts = sorted(p.stem for p in group_dir.glob("*.yaml"))
        return f"override '{override}': no conf/{key}/{value}.yaml (options in {key}/: {', '.join(opts)})"
    return f"override '{override}': {msg}"


def check(overrides: list[str], config_name: str = "train") -> list[str]:
    """Problems found (empty when every value composes)."""
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(overrides)
    except Exception as e:  # noqa: BLE001 (a parse error of any kind is the user's)
        return [f"cannot parse overrides: {str(e).strip().splitlines()[0]}"]
    swept = {o.input_line: [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override()
             else [o.input_line] for o in parsed}
    problems: list[str] = []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        # Add overrides one at a time, group choices first (model=..., hydra/launcher=...):
        # the one whose addition breaks composition is the culprit.
        is_group = lambda line: (Path(CONF_DIR) / line.lstrip("+~").split("=", 1)[0]).is_dir() or "/" in line.split("=", 1)[0]
        accepted: list[str] = []
        for line in sorted(swept, key=lambda l: not is_group(l)):
            for v in swept[line]:
                try:
                    compose(config_name=config_name, overrides=accepted + [v])
                except Exception as e:  # noqa: BLE001
                    problems.append(explain(v, e))
                    break
            else:
                accepted.append(swept[line][0])
    return problems


def main(argv: list[str]) -> int:
    problems = check([a for a in argv if a not in ("-m", "--multirun")])
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
