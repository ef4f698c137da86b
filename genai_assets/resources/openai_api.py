"""One resource for every OpenAI-compatible API the project calls.

Shared by RAG quality (LLM-judged metrics, answer generation) and batch
inference, so both are pointed at a provider in one place: OpenAI itself,
vLLM, or ``transformers serve`` on this machine.
"""

import dagster as dg
import openai
from pydantic import Field


class OpenAICompatibleResource(dg.ConfigurableResource):
    """An OpenAI-compatible endpoint: base URL, model and API key.

    ``api_key`` should come from ``dg.EnvVar("OPENAI_API_KEY")`` so the secret
    never appears in config, logs or metadata.
    """

    base_url: str | None = Field(
        default=None, description="API base URL; None means api.openai.com."
    )
    model: str | None = Field(
        default=None, description="Model name sent with each request; None means not configured."
    )
    api_key: str | None = Field(default=None, description="API key; use dg.EnvVar.")
    timeout_s: float = Field(default=60.0, description="Per-request timeout in seconds.")

    @property
    def is_configured(self) -> bool:
        """Whether a model is configured; callers treat False as 'no LLM available'."""
        return bool(self.model)

    def async_client(self, max_retries: int = 0) -> openai.AsyncOpenAI:
        """A new async client; retries default to 0 because callers own their retry policy."""
        return openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self.api_key or "not-needed",
            timeout=self.timeout_s,
            max_retries=max_retries,
        )

    def client(self, max_retries: int = 0) -> openai.OpenAI:
        """A new synchronous client."""
        return openai.OpenAI(
            base_url=self.base_url,
            api_key=self.api_key or "not-needed",
            timeout=self.timeout_s,
            max_retries=max_retries,
        )
