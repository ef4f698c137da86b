"""Which failures of an external call are worth retrying, and after how long.

A call to an external service fails in one of three ways:

* permanently: bad credentials (401/403), an invalid request (400/404/422), a
  missing or wrong setting. Retrying cannot help; the step must fail at once.
* rate-limited: 429 (or 503) with ``Retry-After``: retry after exactly that long.
* transiently: timeouts, dropped connections, other 5xx: retry with
  exponential backoff and jitter.

This module decides; ``genai_assets.defs.automation.policies.external_call``
turns the decision into Dagster's retry mechanics (a retried step), and
:func:`retry_transient` retries in-process (tenacity) where a step must not
fail, such as a read from an optional document source.
"""

import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import httpx
import tenacity

T = TypeVar("T")

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


@dataclass(frozen=True)
class RetrySettings:
    """How often a transient failure is retried and how long each wait may be.

    Attributes:
        attempts: Attempts in all, the first included.
        backoff_s: Wait after the first failure; doubles after each one.
        max_wait_s: Upper bound of any wait, a service's ``Retry-After`` included.
    """

    attempts: int = 3
    backoff_s: float = 1.0
    max_wait_s: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetrySettings.attempts must be at least 1, got {self.attempts}")


def _wait_s(retry: RetrySettings) -> Callable[[tenacity.RetryCallState], float]:
    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        asked = getattr(error, "retry_after_s", None)
        backoff = retry.backoff_s * 2 ** (state.attempt_number - 1)
        return min(asked if asked is not None else backoff, retry.max_wait_s)

    return wait


def retry_transient(
    call: Callable[[], T], retry: RetrySettings, sleep: Callable[[float], None] = time.sleep
) -> T:
    """``call()``, retried on :class:`TransientExternalError` as ``retry`` says.

    Waits the service's ``Retry-After`` when it gave one, else the exponential
    backoff; the last attempt's error propagates unchanged, any other error at once.
    """
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(retry.attempts),
        wait=_wait_s(retry),
        retry=tenacity.retry_if_exception_type(TransientExternalError),
        sleep=sleep,
        reraise=True,
    )
    return retrying(call)


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


def retry_after_from_headers(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (OpenAI's, finer) or else ``Retry-After``."""
    milliseconds = _header(headers, "retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass  # malformed: fall back to Retry-After
    return parse_retry_after(_header(headers, "retry-after"))


def error_for_status(
    service: str, status: int, headers: Mapping[str, str] | None = None, body: str = ""
) -> ExternalCallError | None:
    """The error an HTTP answer stands for, or None for a success (2xx/3xx)."""
    if status < 400:
        return None
    detail = f"HTTP {status}" + (f": {body.strip()[:300]}" if body.strip() else "")
    retry_after = retry_after_from_headers(headers)
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
