"""The one exception type the command line turns into a single clear line and a non-zero exit."""


class KwsError(Exception):
    """Bad input or state the user can fix: the message says what is wrong and what to do."""
