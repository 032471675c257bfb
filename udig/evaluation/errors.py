"""The exception of an evaluation that cannot go on."""


class EvaluationError(Exception):
    """A run that cannot go on; the message says why and what to do instead.

    Library functions raise it (or ValueError for a bad value); only :func:`udig.evaluation.cli.main` turns
    either into an exit status.
    """
