"""One exception type for mistakes a user can fix.

Scripts catch `UserError` at the top and print its message without a traceback; anything else is a bug
and keeps its traceback so it can be reported.
"""


class UserError(Exception):
    """Bad input: a file, key or value the user can correct. The message says what and how."""
