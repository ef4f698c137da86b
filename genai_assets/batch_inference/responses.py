"""What one chat-completions request came back with: a usable completion, or a classified failure.

Two kinds of answer cannot be used. An API error (429, 5xx, 4xx, a timeout, a
dropped connection) arrives as an ``openai.APIError`` and :func:`classify`
decides whether it is worth a retry. A 2xx whose body is not a chat
completion (malformed or truncated JSON, a proxy's HTML page, a wrong shape, no
choices) is read by :func:`parse_completion` from the raw body, so that it
becomes a retryable :class:`Failure` naming the reason instead of an exception
out of the SDK's parser (``JSONDecodeError``, or an ``AttributeError`` later on
a body the SDK built without validating it). Such bodies come from overloaded
servers, proxies and gateways and usually pass, so they are retried like a 5xx.
"""

import json
from dataclasses import dataclass

import openai
import pydantic

from genai_assets.automation.retries import retry_after_from_headers

RETRYABLE_STATUS = frozenset({408, 409, 429})
ERROR_CHARS = 500
BODY_EXCERPT_CHARS = 200
INVALID_RESPONSE = "invalid_response"


def shorten(text: str, limit: int = ERROR_CHARS) -> str:
    """``text`` cut to ``limit`` characters (an HTML error page is too long for a results row)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Failure:
    """An attempt's error, classified."""

    kind: str
    message: str
    retryable: bool
    status_code: int | None = None
    retry_after: float | None = None

    def describe(self, attempts: int) -> str:
        """The error text of an item that ends with this failure, at most ``ERROR_CHARS`` long."""
        suffix = f" (gave up after {attempts} attempts)" if self.retryable else ""
        prefix = f"{self.kind}: "
        return prefix + shorten(self.message, ERROR_CHARS - len(prefix) - len(suffix)) + suffix


def classify(error: openai.APIError) -> Failure:
    """Decide whether an API error is worth a retry, and how long the server asked to wait."""
    if isinstance(error, openai.APITimeoutError):
        return Failure("timeout", str(error), retryable=True)
    if isinstance(error, openai.APIConnectionError):
        cause = f" ({error.__cause__!r})" if error.__cause__ else ""
        return Failure("connection_error", f"{error}{cause}", retryable=True)
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        retry_after = retry_after_from_headers(error.response.headers)
        if status == 429:
            kind = "rate_limited"
        elif status >= 500:
            kind = "server_error"
        else:
            kind = f"http_{status}"
        retryable = status in RETRYABLE_STATUS or status >= 500
        return Failure(kind, error.message, retryable, status, retry_after)
    return Failure(type(error).__name__, str(error), retryable=False)


class _Message(pydantic.BaseModel):
    content: str | None = None  # None when the model answered with tool calls only


class _Choice(pydantic.BaseModel):
    message: _Message
    finish_reason: str | None = None


class _Usage(pydantic.BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class Completion(pydantic.BaseModel):
    """The parts of a chat completion a batch row uses, validated.

    Only these fields are required, not all of ``openai.types.chat.ChatCompletion``:
    OpenAI-compatible servers (vLLM, ``transformers serve``, gateways) differ in the
    rest (``id``, ``created``, ``finish_reason`` values), and a batch must not
    refuse an answer it can use.
    """

    choices: list[_Choice] = pydantic.Field(min_length=1)
    usage: _Usage | None = None
    model: str | None = None

    @property
    def output(self) -> str:
        """The first choice's text ("" when it has none)."""
        content = self.choices[0].message.content
        return content if content is not None else ""


def _invalid(status_code: int, reason: str, body: bytes) -> Failure:
    excerpt = shorten(body.decode("utf-8", errors="replace"), BODY_EXCERPT_CHARS)
    message = f"{reason}; body ({len(body)} bytes): {excerpt}" if body else f"{reason}; empty body"
    return Failure(INVALID_RESPONSE, message, retryable=True, status_code=status_code)


def parse_completion(status_code: int, body: bytes) -> Completion | Failure:
    """The completion in a successful answer's raw ``body``, or why it is not one."""
    try:
        data = json.loads(body)
    except UnicodeDecodeError as error:
        return _invalid(status_code, f"the body is not UTF-8 ({error.reason})", body)
    except json.JSONDecodeError as error:
        where = f"at char {error.pos} of {len(error.doc)}"
        return _invalid(status_code, f"the body is not valid JSON ({error.msg} {where})", body)
    if not isinstance(data, dict):
        kind = type(data).__name__
        return _invalid(status_code, f"not a chat completion (a JSON {kind})", body)
    try:
        return Completion.model_validate(data)
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
            for problem in error.errors()[:3]
        )
        return _invalid(status_code, f"not a chat completion ({problems})", body)
