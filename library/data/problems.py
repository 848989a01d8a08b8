"""One exception for a file that cannot be used: the build skips it and lists it in one report."""


class Unusable(Exception):
    """The message is the short reason shown after the file's path."""
