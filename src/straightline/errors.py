"""The project's error types. Every error a user can cause names what was wrong and what is allowed."""


class StraightlineError(Exception):
    """Base class: anything raised on purpose by straightline."""


class InvalidRequest(StraightlineError, ValueError):
    """A request field is out of range. Names the field, the value given and what is allowed."""

    def __init__(self, field: str, value, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}={value!r} is not allowed: {allowed}")


class MediaError(StraightlineError):
    """A media file is missing, empty, truncated, corrupt or not a video/image. Names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")
