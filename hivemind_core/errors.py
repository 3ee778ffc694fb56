"""Exception types. Messages are written for the person who will read them:
what is wrong, and what to do about it."""


class HiveMindError(Exception):
    """Base of every error HiveMind raises on purpose."""


class ConfigError(HiveMindError):
    """A setting (environment variable, file) is invalid."""


class NotFoundError(HiveMindError):
    """The thing asked for does not exist (or is not visible to the caller)."""


class ConflictError(HiveMindError):
    """The thing exists, but its state does not allow this now (a task without a result yet,
    or a failed one, has nothing to download)."""


class PermissionDeniedError(HiveMindError):
    """The caller may not do this."""


class ValidationError(HiveMindError):
    """Input (a job spec, a dataset, a form field) is invalid.

    ``field`` names the offending field when there is one, so a UI can show the
    message next to it.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class OutputPathError(ValidationError):
    """A file cannot be written where the user asked (``--output``)."""
