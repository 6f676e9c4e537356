"""`ServeError`: a refused request, answered as `{"error": {"code", "message"}}` with its HTTP status."""

from __future__ import annotations


class ServeError(Exception):
    """status: the HTTP status (4xx for the client's input, 503 when busy); code: a stable word for
    programs (`empty_body`, `not_an_image`, ...); message: one line for people; headers: extra
    response headers (Retry-After)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}
