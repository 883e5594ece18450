"""The one exception type users see.

Library code raises :class:`PrunescaleError` with a message written for the person at the terminal (what
is wrong and what to do); the CLI prints it as one line and exits with code 2. Anything else that escapes
is a bug and keeps its traceback.
"""


class PrunescaleError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2
