"""Check a sweep's overrides before launching anything: one line per problem, exit 2.

    python experiments/check_overrides.py model=classifier,routerdc encoder=minilm seed=1,2,3
    python experiments/check_overrides.py --compose-only ...     # config composition only

1. Composes the train config once per value of every swept key (the others at their first
   value), so an unknown config group (``modle=x``), an unknown option (``model=nope``) or a
   bad key fails here in one line instead of half-way through a sweep.
2. Then, for every combination of the swept values (``seed`` excepted: it cannot make a
   job invalid), builds what the job would check before training: the data module loads
   its records (no encoding) and the router is built from them and runs its own checks
   (``model.setup("fit")``: e.g. RouterDC's cluster loss on data without cluster ids). A
   combination that fails is named with the problem, so a sweep does not die after job 0.
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


def _user_message(err: BaseException) -> str:
    while err.__cause__ is not None and type(err).__name__ == "InstantiationException":
        err = err.__cause__
    msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return msg


def check_jobs(overrides: list[str], config_name: str = "train") -> list[str]:
    """Problems of the jobs the sweep would run (data loaded, router built and checked)."""
    import itertools

    import hydra

    from router_lab.train import build_datamodule

    parser = OverridesParser.create()
    parsed = parser.parse_overrides(overrides)
    axes = []
    for o in parsed:
        key = o.get_key_element()
        if o.is_sweep_override() and key.lstrip("+~") != "seed":
            axes.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        elif o.is_sweep_override():
            axes.append([f"{key}={next(iter(o.sweep_string_iterator()))}"])
        else:
            axes.append([o.input_line])
    problems: list[str] = []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for combo in itertools.product(*axes):
            try:
                cfg = compose(config_name=config_name, overrides=list(combo) + ["paths.output_dir=unused"])
                dm = build_datamodule(cfg)
                dm.setup("test")  # load and check the records; encode nothing
                model = hydra.utils.instantiate(cfg.model, data_info=dm.info(), _convert_="all")
                model.setup("fit")
            except Exception as e:  # noqa: BLE001 (what the job would stop with)
                problems.append(f"job {' '.join(combo) or '(defaults)'}: {_user_message(e)}")
    return problems


def main(argv: list[str]) -> int:
    compose_only = "--compose-only" in argv
    args = [a for a in argv if a not in ("-m", "--multirun", "--compose-only")]
    problems = check(args)
    if not problems and not compose_only:
        problems = check_jobs(args)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
