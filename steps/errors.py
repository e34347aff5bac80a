"""Errors a step raises to say it failed as a whole (not for one table or one pair)."""


class StepFailed(RuntimeError):
    """The step produced nothing usable; the message says why and what to fix."""
