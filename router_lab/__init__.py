"""router_lab: train and compare LLM routers.

    python -m router_lab.train                              # default: classifier router, synthetic benchmark
    python -m router_lab.train +experiment=routerdc_split2  # RouterDC on RouterDC's split2 protocol
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

__version__ = "0.1.0"

#: The repository root: conf/ and outputs/ live here.
ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = ROOT / "conf"

if not OmegaConf.has_resolver("router_lab_root"):
    OmegaConf.register_new_resolver("router_lab_root", lambda: str(ROOT))
if not OmegaConf.has_resolver("router_lab_pid"):  # run dir suffix (conf/hydra/default.yaml)
    import os

    OmegaConf.register_new_resolver("router_lab_pid", lambda: str(os.getpid()))
if not OmegaConf.has_resolver("router_lab_name"):  # a name used as a path part: checked (router_lab.files)
    def _path_part(name):
        from router_lab.files import check_path_part

        return check_path_part(name, "task_name")

    OmegaConf.register_new_resolver("router_lab_name", _path_part)
