"""The product's error tree. HTTP status codes live only in the API's error mapping, never here.

    FluxError
    ├── NotFound        the object does not exist, or belongs to someone else
    ├── Conflict        the object is in a state that forbids the operation
    ├── Invalid         the caller's input is wrong; retrying the same input cannot help
    │   ├── InvalidField    ... and it is one named field (the 422 names it)
    │   ├── EmptyUpload     an upload with no bytes
    │   ├── TooLarge        an upload over the configured limit
    │   └── RefusedUrl      a URL to fetch or call that the outbound rules refuse (scheme, address)
    ├── Forbidden       not the author, or a signed playback token missing, altered or expired
    ├── Gone            a one-use capability that was used or has expired
    ├── Unavailable     a dependency (PostgreSQL, Redis, storage) failed; retrying may help
    └── MediaError      ffmpeg could not do the work; carries its exit code and stderr tail
        └── UnreadableMedia   the input is not audio or video we accept: fail, never retry

Foreign exceptions are translated once, at the boundary that calls the library, with `raise ... from exc`.
"""

from __future__ import annotations


class FluxError(Exception):
    """Base of every error FluxStudio raises on purpose."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(FluxError):
    code = "not_found"


class Conflict(FluxError):
    code = "conflict"


class Invalid(FluxError):
    code = "invalid"


class InvalidField(Invalid):
    """One named field of the input is wrong: surfaces name it (`errors[].loc` in a 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class EmptyUpload(Invalid):
    code = "empty_upload"


class TooLarge(Invalid):
    code = "too_large"


class RefusedUrl(Invalid):
    """A URL that the outbound rules refuse: not http(s), or a non-public address (an SSRF attempt)."""

    code = "url_refused"


class Forbidden(FluxError):
    """The caller may not do this: not the object's author (a comment), or a signed playback token that
    is missing, altered or expired. Never for another user's object: that is NotFound."""

    code = "forbidden"


class Gone(FluxError):
    code = "gone"


class Unavailable(FluxError):
    """A dependency failed in a way that a later attempt may not see again."""

    code = "unavailable"


class MediaError(FluxError):
    """ffmpeg failed or produced something we cannot publish.

    `retryable` is False when the input itself is at fault, so a worker fails the job at once.
    """

    code = "media_error"
    retryable = True

    def __init__(self, message: str, *, exit_code: int | None = None, stderr_tail: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail

    def __str__(self) -> str:
        if self.exit_code is None:
            return self.message
        return f"{self.message} (ffmpeg exit code {self.exit_code})"


class UnreadableMedia(MediaError):
    """The input is not audio or video that we accept (wrong format, corrupt, hostile, a bomb)."""

    code = "unreadable_media"
    retryable = False
