"""The error of a user's input: a bad file, sheet row or layout, named in its message.

Every reader of raw data raises a subclass of :class:`DataError` (still a ``ValueError``), so the
stage that meets one can say the message alone: it is the whole story, and a traceback of the
reader's internals would bury it (:func:`plexus.runlog.logged`).
"""


class DataError(ValueError):
    """A problem with the input data; the message names the file (sheet row, config key) and the problem."""
