"""The Prometheus Pushgateway that materialization metrics are pushed to.

Off unless ``url`` is set (``PROMETHEUS_PUSHGATEWAY_URL`` in
``genai_assets.defs.resources``). The ``metrics_push_sensor`` uses it.
"""

from collections.abc import Iterable, Mapping

import dagster as dg
from pydantic import Field

from genai_assets.tracking import prometheus_metrics


class PushgatewayResource(dg.ConfigurableResource):
    """A Pushgateway URL, with basic-auth credentials through ``dg.EnvVar``."""

    url: str | None = Field(
        default=None, description="e.g. http://pushgateway.monitoring:9091; None: metrics off."
    )
    username: str | None = Field(default=None, description="Basic-auth user; use dg.EnvVar.")
    password: str | None = Field(default=None, description="Basic-auth password; use dg.EnvVar.")
    timeout_s: float = Field(default=10.0, gt=0, description="Per-push timeout in seconds.")

    @property
    def is_configured(self) -> bool:
        """Whether a Pushgateway is configured."""
        return bool(self.url)

    def push(self, group: Mapping[str, str], samples: Iterable[prometheus_metrics.Sample]) -> None:
        """Replace the group's metrics on the gateway."""
        if not self.url:
            raise ValueError("PushgatewayResource.url is not set (metrics are off)")
        prometheus_metrics.push(
            self.url, group, samples, self.timeout_s, self.username, self.password
        )
