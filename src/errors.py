"""The one exception type entry points turn into a clean message instead of a traceback."""


class AdvPurifyError(Exception):
    """A bad input the user can fix: the message says what to change."""
