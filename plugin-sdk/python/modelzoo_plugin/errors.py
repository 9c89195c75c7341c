"""Typed errors (docs/protocol.md, "Errors")."""

from .codec import ERROR_CODES

__all__ = ["Error", "NotFound", "Unavailable", "Timeout", "BadRequest", "Internal"]


class Error(Exception):
    """A failure with a protocol error code; raise it from a handler.

        raise Error("not_found", "no model 'x'")      # or: raise NotFound("no model 'x'")

    Any other exception raised by a handler is answered as `internal` with its text.
    """

    def __init__(self, code, message=""):
        if code not in ERROR_CODES:
            raise ValueError("unknown error code %r (one of %s)" % (code, ", ".join(ERROR_CODES)))
        super().__init__(message)
        self.code = code
        self.message = message

    def to_dict(self):
        return {"code": self.code, "message": self.message}

    def __repr__(self):
        return "%s(%r, %r)" % (type(self).__name__, self.code, self.message)


class _Coded(Error):
    CODE = "internal"

    def __init__(self, message=""):
        super().__init__(self.CODE, message)


class NotFound(_Coded):
    """This registry has no such model, version or file."""
    CODE = "not_found"


class Unavailable(_Coded):
    """It may exist but cannot be served now: another source may work."""
    CODE = "unavailable"


class Timeout(_Coded):
    """A deadline passed."""
    CODE = "timeout"


class BadRequest(_Coded):
    """The request itself is wrong (missing, mistyped or invalid parameter)."""
    CODE = "bad_request"


class Internal(_Coded):
    """A bug or an environment failure on this side."""
    CODE = "internal"
