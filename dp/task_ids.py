"""Task ids: how they are made and the one pattern every id must match before touching the disk.

A task id names a directory, so it is validated before any file system use: letters, digits,
``_`` and ``-`` only, never ``..`` or a slash. New ids carry the second they were made plus random
hex, so two tasks created in the same second never collide.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime

TASK_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


class InvalidTaskId(ValueError):
    """A task id that could escape its directory or break a file name."""


def new_task_id(prefix: str = "manual") -> str:
    """``<prefix>_YYYYMMDD_HHMMSS_xxxx`` with four random hex digits."""
    return f"{prefix}_{datetime.now():%Y%m%d_%H%M%S}_{secrets.token_hex(2)}"


def validate_task_id(task_id: str) -> str:
    """Return the id unchanged, or raise InvalidTaskId saying what is allowed."""
    if not isinstance(task_id, str) or not TASK_ID_PATTERN.fullmatch(task_id):
        raise InvalidTaskId(
            f"invalid task id {task_id!r}: use 1-40 letters, digits, '_' or '-', starting with a letter or digit"
        )
    return task_id
