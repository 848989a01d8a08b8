"""One exception type for mistakes a user can fix.

Scripts run their work through `run_reporting_user_errors`, which prints a `UserError`'s message without a
traceback; anything else is a bug and keeps its traceback so it can be reported.
"""

from __future__ import annotations

import sys
from typing import Callable


class UserError(Exception):
    """Bad input: a file, key or value the user can correct. The message says what and how."""


def run_reporting_user_errors(work: Callable[[], int | None], status: int, prog: str | None = None) -> int:
    """A script's exit status: `work`'s (None is 0), or for a UserError `status`, after its message on stderr as
    "PROG: error: ..." (or "error: ..." without `prog`)."""
    try:
        return work() or 0
    except UserError as error:
        print(f"{prog}: error: {error}" if prog else f"error: {error}", file=sys.stderr)
        return status
