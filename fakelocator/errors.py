"""The one exception type for mistakes a user can fix (bad paths, bad options, bad models)."""


class FakeLocatorError(Exception):
    """A user-facing error: command-line tools print its message on one line and exit non-zero."""


class InputError(FakeLocatorError):
    """One input (an image, a frame, a video) cannot be processed; other inputs are unaffected."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
