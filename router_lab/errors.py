"""User-caused errors end in one line: what was wrong, where, and what was expected.

Every error a user can cause (data, config, keys, endpoints) is raised as a subclass of
``UserError`` or one of the module-specific ``ValueError`` subclasses listed in
``USER_ERRORS``; entry points run through ``run_main``, which prints ``error: <message>``
and exits with status 2 instead of a traceback (``ROUTER_LAB_TRACEBACK=1`` shows it).
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Any, Callable


class UserError(ValueError):
    """A problem the user can fix (config, input, environment)."""


def user_error_types() -> tuple[type[BaseException], ...]:
    from router_lab.data.records import DataError
    from router_lab.encoders import EncoderError
    from router_lab.pool import PoolError

    return (UserError, DataError, EncoderError, PoolError, FileNotFoundError)


def user_error(message: str) -> UserError:
    return UserError(message)


def run_main(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; a user error becomes one line on stderr and exit status 2."""
    try:
        return fn(*args, **kwargs)
    except user_error_types() as e:
        if os.environ.get("ROUTER_LAB_TRACEBACK"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        logging.getLogger("router_lab").debug("user error", exc_info=True)
        print(f"error: {msg}", file=sys.stderr, flush=True)
        sys.exit(2)
