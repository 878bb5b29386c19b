"""User-caused errors end in one line: what was wrong, where, and what was expected.

The bottom layer of the package (it imports nothing of router_lab at module level). Every
error a user can cause (data, config, keys, endpoints) is a ``UserError`` (the data, encoder
and pool errors subclass it); entry points run through ``run_main``, which prints
``error: <message>`` and exits with status 2 instead of a traceback (``ROUTER_LAB_TRACEBACK=1``
or ``HYDRA_FULL_ERROR=1`` shows it). An error raised inside a config ``_target_``'s
constructor reaches the user as that one line too, not as Hydra's ``InstantiationException``
wrapper. Every command is a Hydra entry point made with :func:`hydra_cli`, which adds the
same for Hydra's own errors (unknown config group or option, a key typo) and checks the
composed config against the entry point's schema (:mod:`router_lab.config_schema`).
"""
from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Any, Callable


class UserError(ValueError):
    """A problem the user can fix (config, input, environment)."""


#: What a user can cause besides a UserError: a path that is missing, a file where a directory
#: was expected, ... (the message names the path the user gave).
USER_ERRORS = (UserError, FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError, PermissionError)


#: Set while :func:`hydra_cli` has turned on HYDRA_FULL_ERROR only to catch Hydra's errors itself.
_ONE_LINE_ENV = "ROUTER_LAB_HYDRA_ONE_LINE"


def _show_traceback() -> bool:
    full = os.environ.get("HYDRA_FULL_ERROR") == "1" and not os.environ.get(_ONE_LINE_ENV)
    return bool(os.environ.get("ROUTER_LAB_TRACEBACK")) or full


def one_line(e: BaseException) -> str:
    """The message of ``e`` on one line (its first line; ``TypeName`` if it has none)."""
    text = str(e).strip()
    return text.splitlines()[0].strip() if text else type(e).__name__


def _instantiation_error(e: BaseException) -> str | None:
    """``InstantiationException`` from a ``_target_`` constructor: what the constructor said,
    where (the config key), as one line; ``None`` if ``e`` is not one."""
    try:
        from hydra.errors import InstantiationException
    except ImportError:  # pragma: no cover - hydra is a dependency
        return None
    if not isinstance(e, InstantiationException):
        return None
    cause = e.__cause__
    text = str(e)
    key = next((l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith("full_key:")), "")
    target = text.split("'")[1].rsplit(".", 1)[-1] if text.count("'") >= 2 else ""
    what = one_line(cause) if cause is not None else one_line(e)
    if cause is not None and not isinstance(cause, USER_ERRORS):
        what = f"{type(cause).__name__}: {what}"
    where = ": ".join(x for x in (key, target and f"{target}()") if x)
    return f"{where}: {what}" if where else what


def _report(msg: str) -> None:
    logging.getLogger("router_lab").debug("user error", exc_info=True)
    print(f"error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def run_main(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; a user error becomes one line on stderr and exit status 2."""
    try:
        return fn(*args, **kwargs)
    except USER_ERRORS as e:
        if _show_traceback():
            raise
        _report(one_line(e))
    except Exception as e:
        msg = _instantiation_error(e)
        if msg is None or _show_traceback():
            raise
        _report(msg)


#: Appended when an override of data.train/val/test does not fit (the old per-file forms).
_DATA_FILES_HINT = ("; data.train/val/test take a file, a glob or a list [a,b] where the data config lists files, "
                    "their spec's keys where it has a spec (clinc150: {split: train}); how files are read: "
                    "data.source.<arg>=...")


def _hydra_message(e: BaseException) -> str:
    """Hydra's multi-line composition errors as one line: what, the options there are, why."""
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    head: list[str] = []
    options: list[str] = []
    for line in lines:
        if line.startswith("Config search path"):
            break
        if head and head[-1].startswith("Available options") or options:
            options.append(line)
        else:
            head.append(line)
    msg = " ".join(head) + (" " + ", ".join(options) if options else "")
    override = getattr(e, "override", None)
    if isinstance(override, str) and override not in msg:
        msg = f"override {override!r}: {msg}"
    cause = e.__cause__
    if cause is not None and one_line(cause) not in msg:
        msg += f" ({one_line(cause).rstrip('.')})"
    parent, key = getattr(cause, "parent_node", None), getattr(cause, "key", None)
    if "not in struct" in msg and isinstance(key, str) and parent is not None:  # a typo: the closest key
        import difflib

        close = difflib.get_close_matches(key, [str(k) for k in parent.keys() if k != "hydra"], n=1)
        msg += f"; did you mean {close[0]!r}?" if close else ""
    if any(f"{q}data.{k}" in msg for k in ("train", "val", "test") for q in ("'", "override ")) \
            and ("not in struct" in msg or "Cannot merge" in msg):  # the old per-file overrides
        msg += _DATA_FILES_HINT
    return msg or type(e).__name__


def hydra_cli(config_name: str, schema: Any = None, options: bool = False) -> Callable:
    """``hydra.main`` for a project entry point, with the project's error contract:

        @hydra_cli("train", schema=TrainConfig)
        def main(cfg): ...

    Hydra's own errors (unknown config group or option, a key typo, a bad override) become
    one ``error:`` line and exit status 2 (``HYDRA_FULL_ERROR=1`` keeps Hydra's full
    report); with ``schema`` the composed config is validated before the task runs, and with
    ``options=True`` the task gets the validated schema object instead of the config.
    ``main()`` reads the command line; ``main(["key=value", ...])`` runs that command line in
    this process (tests, scripts); ``main(cfg)`` runs the task on a composed config.
    """
    import hydra

    from router_lab import CONF_DIR

    def deco(task: Callable[[Any], Any]) -> Callable[..., Any]:
        composed: list[bool] = []  # set once Hydra has composed the config and the task runs
        @functools.wraps(task)
        def job(cfg: Any) -> Any:
            composed.append(True)
            checked = None
            if schema is not None:
                from router_lab.config_schema import check_config

                checked = run_main(check_config, cfg, schema)
            return task(checked if options else cfg)

        hydra_main = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(job)

        @functools.wraps(task)
        def entry(cfg: Any = None) -> Any:
            if cfg is not None and not isinstance(cfg, (list, tuple)):
                return job(cfg)
            argv = sys.argv
            if cfg is not None:
                sys.argv = [argv[0] if argv else config_name, *cfg]
            composed.clear()
            try:
                return _run_hydra(hydra_main, composed)
            finally:
                sys.argv = argv

        entry.hydra_main = hydra_main  # type: ignore[attr-defined]
        return entry

    return deco


def _run_hydra(hydra_main: Callable[[], Any], composed: list[bool]) -> Any:
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return hydra_main()
    # Hydra then raises its errors instead of printing them; we print one line.
    os.environ["HYDRA_FULL_ERROR"] = os.environ[_ONE_LINE_ENV] = "1"
    try:
        return hydra_main()
    except USER_ERRORS as e:  # e.g. from a Hydra callback, outside the task
        if os.environ.get("ROUTER_LAB_TRACEBACK"):
            raise
        _report(one_line(e))
    except Exception as e:
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        if os.environ.get("ROUTER_LAB_TRACEBACK"):
            raise
        inst = _instantiation_error(e)
        if inst is not None:
            _report(inst)
        if isinstance(e, (HydraException, OmegaConfBaseException)):
            _report(_hydra_message(e))
        if composed:  # the task's own failure: a bug, with its traceback
            raise
        # OmegaConf can fail on an override with a plain error (e.g. a key under a list node).
        overrides = " ".join(a for a in sys.argv[1:] if not a.startswith("-"))
        _report(f"the command line does not fit the config ({type(e).__name__}: {one_line(e)}); overrides: "
                f"{overrides}" + (_DATA_FILES_HINT if " data." in f" {overrides}" else ""))
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)
        os.environ.pop(_ONE_LINE_ENV, None)
