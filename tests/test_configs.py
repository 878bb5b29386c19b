"""Every config composes, and every _target_ binds its arguments to the target's signature
(without instantiating anything), so a typo in any YAML fails here, fast."""
from __future__ import annotations

import inspect

import hydra
import pytest
from omegaconf import DictConfig, ListConfig, OmegaConf

from conftest import compose
from router_lab import CONF_DIR

# Arguments train.py passes at instantiation time, by config group.
RUNTIME_KWARGS = {"model": {"data_info"}, "trainer": {"callbacks", "logger"}}
ROOT_GROUPS = ["data", "encoder", "model", "llm_pool", "trainer", "logger", "callbacks", "debug"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def targets(node, path="") -> list[tuple[str, DictConfig]]:
    found = []
    if isinstance(node, DictConfig):
        if "_target_" in node:
            found.append((path, node))
        for k in node:
            found += targets(node._get_node(k), f"{path}.{k}" if path else str(k))
    elif isinstance(node, ListConfig):
        for i, v in enumerate(node):
            found += targets(v, f"{path}[{i}]")
    return found


def check_binds(cfg: DictConfig) -> None:
    for path, node in targets(cfg):
        if path.startswith("hydra"):
            continue
        target = hydra.utils.get_object(node._target_)
        kwargs = {k for k in node if not str(k).startswith("_")}
        group = path.split(".")[0]
        extra = RUNTIME_KWARGS.get(group, set())
        sig = inspect.signature(target)
        try:
            sig.bind_partial(**{k: None for k in kwargs | extra})
        except TypeError as e:
            pytest.fail(f"{path}: {node._target_} does not accept {sorted(kwargs)}: {e}")
        required = [n for n, p in sig.parameters.items() if p.default is p.empty
                    and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"]
        missing = [n for n in required if n not in kwargs | extra]
        assert not missing, f"{path}: {node._target_} needs {missing}"


def check_loader_specs(cfg: DictConfig) -> None:
    from router_lab.data.sources import resolve_loader

    data = OmegaConf.to_container(cfg.data, resolve=False)
    source = data.get("source") or {}
    files = []  # each a path (read with data.source) or a spec (merged onto it unless it names another loader)
    for key in ("train", "val"):
        v = data.get(key)
        files += v if isinstance(v, list) else ([v] if isinstance(v, dict) else [])
    test = data.get("test") or {}
    for v in ([test] if not isinstance(test, dict) or "loader" in test or "path" in test else test.values()):
        files += v if isinstance(v, list) else [v]
    for f in files:
        spec = {"path": f} if isinstance(f, str) else f
        spec = {**source, **spec} if spec.get("loader", source.get("loader")) == source.get("loader") else spec
        resolve_loader(spec, where="test")  # raises DataError on an unknown loader or argument


@pytest.mark.parametrize("group", ROOT_GROUPS)
def test_every_option_of_every_group_composes_and_binds(group):
    for opt in options(group):
        cfg = compose([f"{group}={opt}"])
        check_binds(cfg)
        check_loader_specs(cfg)


@pytest.mark.parametrize("name", options("experiment"))
def test_every_experiment_composes_with_plus_syntax_and_binds(name):
    cfg = compose([f"+experiment={name}"])
    check_binds(cfg)
    check_loader_specs(cfg)


def test_other_root_configs_compose():
    for root in sorted(p.stem for p in CONF_DIR.glob("*.yaml")):
        overrides = ["ckpt_path=x.ckpt"] if root == "eval" else []
        cfg = compose(overrides, config_name=root)
        check_binds(cfg)


def test_default_config_is_classifier_on_synthetic_with_minilm():
    cfg = compose()
    assert cfg.model._target_.endswith("ClassifierRouter")
    assert cfg.data.train.loader == "synthetic"
    assert cfg.encoder.name == "minilm" and cfg.encoder.pretrained == "package:minilm"


def test_config_typo_fails_in_composition():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose(["model.learning_rate_typo=1"])
    with pytest.raises(ConfigCompositionException):
        compose(["encoder=no_such_encoder"])
