"""Schemas of the project's own config groups: values are checked where they enter.

    check_config(cfg, TrainConfig)   # a UserError naming the key, e.g.
                                     # "trainer.max_epochs: Input should be a valid integer ... (got 'abc')"

Pydantic models over the keys whose type or range the code relies on (``trainer``, ``data``,
``model``, ``encoder``, the top-level seeds, ``clusters``' options); every other key passes
through (``extra="allow"``), so model families and loggers keep their own settings. The
commands around a trained router (route, export, calibrate, serve, report) have closed
schemas (``extra="forbid"``): their options are all in ``conf/<command>.yaml``. The
Hydra entry points (:func:`router_lab.errors.hydra_cli`) run the check on the composed config
before the task starts: a bad value ends in one line, before any data is read or any file
is written. The synthetic generator has its own schema (:mod:`router_lab.synth.settings`).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from router_lab.errors import UserError

PositiveInt = Field(default=None, ge=1)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class TrainerConfig(_Open):
    max_epochs: Optional[int] = Field(default=None, ge=-1)
    min_epochs: Optional[int] = Field(default=None, ge=0)
    max_steps: Optional[int] = Field(default=None, ge=-1)
    check_val_every_n_epoch: Optional[int] = PositiveInt
    log_every_n_steps: Optional[int] = Field(default=None, ge=0)
    gradient_clip_val: Optional[float] = Field(default=None, ge=0.0)
    accumulate_grad_batches: Optional[int] = PositiveInt
    num_sanity_val_steps: Optional[int] = Field(default=None, ge=-1)
    # Lightning: a fraction in (0, 1] or a number of batches.
    limit_train_batches: Optional[Union[int, float]] = Field(default=None, ge=0)
    limit_val_batches: Optional[Union[int, float]] = Field(default=None, ge=0)
    limit_test_batches: Optional[Union[int, float]] = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _epochs(self) -> "TrainerConfig":
        if self.min_epochs is not None and self.max_epochs not in (None, -1) and self.min_epochs > self.max_epochs:
            raise ValueError(f"min_epochs ({self.min_epochs}) is greater than max_epochs ({self.max_epochs})")
        return self


class SplitConfig(_Open):
    val_fraction: Optional[float] = Field(default=None, ge=0.0, lt=1.0)
    seed: Optional[int] = None


class DataConfig(_Open):
    batch_size: Optional[int] = PositiveInt
    eval_batch_size: Optional[int] = PositiveInt
    num_workers: Optional[int] = Field(default=None, ge=0)
    split: Optional[SplitConfig] = None


class EncoderConfig(_Open):
    max_length: Optional[int] = PositiveInt
    encode_batch_size: Optional[int] = PositiveInt
    frozen: Optional[bool] = None
    normalize: Optional[bool] = None


class ModelConfig(_Open):
    """The keys router families share; a family's other keys pass through."""

    lr: Optional[float] = Field(default=None, gt=0.0)
    head_lr: Optional[float] = Field(default=None, gt=0.0)
    weight_decay: Optional[float] = Field(default=None, ge=0.0)
    warmup_ratio: Optional[float] = Field(default=None, ge=0.0, le=1.0)
    dropout: Optional[float] = Field(default=None, ge=0.0, lt=1.0)
    label_smoothing: Optional[float] = Field(default=None, ge=0.0, lt=1.0)
    confidence_threshold: Optional[float] = Field(default=None, ge=0.0, le=1.0)
    temperature: Optional[float] = Field(default=None, gt=0.0)
    hidden_dim: Optional[int] = Field(default=None, ge=0)  # 0: no hidden layer
    projection_dim: Optional[int] = Field(default=None, ge=0)  # 0: no projection
    embedding_dim: Optional[int] = PositiveInt
    top_k: Optional[int] = PositiveInt
    num_clusters: Optional[int] = PositiveInt


class TrainConfig(_Open):
    seed: Optional[int] = None
    data_seed: Optional[int] = None
    train: Optional[bool] = None
    test: Optional[bool] = None
    trainer: Optional[TrainerConfig] = None
    data: Optional[DataConfig] = None
    encoder: Optional[EncoderConfig] = None
    model: Optional[ModelConfig] = None


class EvalConfig(_Open):
    # ``data=OPTION`` refers to the run's ``${encoder}`` / ``${llm_pool}``: it is checked
    # (RunDataConfig) once merged into the run's config (runs.load_run_datamodule), not here.
    trainer: Optional[TrainerConfig] = None


class RunDataConfig(_Open):
    data: Optional[DataConfig] = None


class ClustersConfig(_Open):
    seed: Optional[int] = None
    n_clusters: int = Field(default=5, ge=1)
    reduce: Literal["none", "pca", "tsne"] = "none"
    reduce_dim: int = Field(default=32, ge=1)
    max_items_per_file: Optional[int] = PositiveInt
    data: Optional[DataConfig] = None
    encoder: Optional[EncoderConfig] = None


# ------------------------------------------------------------------ commands around a trained router

#: Free text or a path: Hydra reads ``query=42`` as a number and ``query=true`` as a boolean.
Text = Annotated[str, BeforeValidator(lambda v: str(v).lower() if isinstance(v, bool) else v)]


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    task_name: str


class LoaderConfig(_Open):
    """``conf/loader/<name>.yaml``: a loader of ``router_lab.data.loaders`` and its arguments."""

    name: str


class RouteConfig(_Command):
    router: Optional[Text]
    mode: Literal["single", "interactive", "batch", "evaluate"]
    query: Optional[Text]
    input: Optional[Text]
    output: Optional[Text]
    on_error: Literal["skip", "stop"]
    batch_size: int = Field(ge=1)
    out: Optional[Text]
    route_map: Optional[Text]
    threads: int = Field(ge=0)
    quantize: Optional[Text]
    runtime: Text
    loader: LoaderConfig


class ExportConfig(_Command):
    ckpt_path: Optional[Text]
    out: Optional[Text]
    overwrite: bool
    route_map: Optional[Text]
    onnx: bool


class CalibrateConfig(_Command):
    router: Optional[Text]
    input: Optional[Text]
    target_cost: Optional[float]
    target_quality: Optional[float]
    target_oos_recall: Optional[float]
    save: bool
    loader: LoaderConfig


class ServeConfig(_Command):
    router: Optional[Text]
    route_map: Optional[Text]
    trust_export: bool
    host: Text
    port: int = Field(ge=1, le=65535)
    max_concurrency: int = Field(ge=1)
    queue_timeout: float = Field(gt=0)
    timeout: float = Field(gt=0)
    connect_timeout: float = Field(gt=0)
    max_body_mb: float = Field(gt=0)
    route_workers: int = Field(ge=1)
    threads: int = Field(ge=0)
    quantize: Optional[Text]
    runtime: Text


class ReportConfig(_Command):
    roots: Union[list[Text], Text, None]
    out: Optional[Text]
    readme: Optional[Text]


def check_config(cfg: Any, schema: type[BaseModel]) -> BaseModel:
    """Validate a composed config (a DictConfig or a mapping) against ``schema``; one
    :class:`~router_lab.errors.UserError` line naming the key if a value is wrong."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(cfg, DictConfig):
        # Only the groups the schema knows, interpolations resolved (``${encoder}``);
        # mandatory ``???`` values stay as they are.
        plain = {}
        closed = schema.model_config.get("extra") == "forbid"  # then a key it does not know is an error
        for name in (cfg if closed else schema.model_fields):
            if name not in cfg:
                continue
            try:
                node = cfg[name]
                plain[name] = (OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
                               if OmegaConf.is_config(node) else node)
            except OmegaConfBaseException as e:
                key = getattr(e, "full_key", None) or name
                raise UserError(f"{key}: {str(e).splitlines()[0]}") from None
        cfg = plain
    try:
        return schema.model_validate(cfg)
    except ValidationError as e:
        raise UserError(format_validation_error(e)) from None


def format_validation_error(e: ValidationError, prefix: str = "") -> str:
    """Pydantic's first error as ``key.path: what was expected (got value)``."""
    err = e.errors()[0]
    # Union members add their type name to the location; keep only the config's keys.
    loc = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and p in ("int", "float", "function-after[_epochs()]")))
    where = ".".join(x for x in (prefix, loc) if x) or "config"
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    return f"{where}: {msg}{shown}"
