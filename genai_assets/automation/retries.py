"""Which failures of an external call are worth retrying, and after how long.

A call to an external service fails in one of three ways:

* permanently: bad credentials (401/403), an invalid request (400/404/422), a
  missing or wrong setting. Retrying cannot help; the step must fail at once.
* rate-limited: 429 (or 503) with ``Retry-After``: retry after exactly that long.
* transiently: timeouts, dropped connections, other 5xx: retry with
  exponential backoff and jitter.

This module decides; ``genai_assets.defs.automation.policies.external_call``
turns the decision into Dagster's retry mechanics.
"""

import email.utils
import time
from collections.abc import Mapping

import httpx

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class ExternalCallError(Exception):
    """An external service call failed; ``status`` is the HTTP status when there was one."""

    def __init__(self, service: str, message: str, status: int | None = None):
        super().__init__(f"{service}: {message}")
        self.service = service
        self.status = status


class PermanentExternalError(ExternalCallError):
    """A failure that no retry can fix: fail the step at once."""


class TransientExternalError(ExternalCallError):
    """A failure that may pass; ``retry_after_s`` is the wait the service asked for, if any."""

    def __init__(
        self,
        service: str,
        message: str,
        status: int | None = None,
        retry_after_s: float | None = None,
    ):
        super().__init__(service, message, status)
        self.retry_after_s = retry_after_s


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def error_for_status(
    service: str, status: int, headers: Mapping[str, str] | None = None, body: str = ""
) -> ExternalCallError | None:
    """The error an HTTP answer stands for, or None for a success (2xx/3xx)."""
    if status < 400:
        return None
    detail = f"HTTP {status}" + (f": {body.strip()[:300]}" if body.strip() else "")
    retry_after = parse_retry_after(_header(headers, "retry-after"))
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientExternalError(service, detail, status, retry_after)
    # Every other 4xx: the request itself is wrong and will be wrong again.
    hint = {401: " (check the credentials)", 403: " (the credentials lack permission)"}
    return PermanentExternalError(service, detail + hint.get(status, ""), status)


def check_response(service: str, response: httpx.Response) -> httpx.Response:
    """``response`` when it succeeded, else raise the classified error."""
    error = error_for_status(
        service, response.status_code, response.headers, response.text if response.content else ""
    )
    if error is not None:
        raise error
    return response


def classify_exception(service: str, error: BaseException) -> ExternalCallError | None:
    """The classified form of an exception raised by httpx or the openai client.

    Returns None for exceptions this module does not know; the caller lets those
    propagate unchanged (the step's retry policy then applies).
    """
    if isinstance(error, ExternalCallError):
        return error
    if isinstance(error, httpx.HTTPStatusError):
        response = error.response
        return error_for_status(service, response.status_code, response.headers, response.text)
    if isinstance(error, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
        return TransientExternalError(service, f"{type(error).__name__}: {error}")
    try:
        import openai
    except ImportError:  # pragma: no cover - openai is a project dependency
        return None
    if isinstance(error, openai.APIStatusError):
        found = error_for_status(
            service, error.status_code, error.response.headers, str(error.message)
        )
        return found or TransientExternalError(service, str(error), error.status_code)
    if isinstance(error, openai.APIConnectionError):  # includes APITimeoutError
        return TransientExternalError(service, f"{type(error).__name__}: {error}")
    return None
