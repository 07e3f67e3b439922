"""A thin typed async client of the journey-conversions gRPC service.

The messages and the raw stub are the generated package ``journeys.conversions.v1``.
"""

from journey_conversions_client.batching import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    merge_item_results,
    split_batches,
)
from journey_conversions_client.client import (
    DEFAULT_TIMEOUT,
    TENANT_HEADER,
    JourneyConversionsClient,
    RetryEvent,
)
from journey_conversions_client.errors import ERROR_DOMAIN, FieldViolation, JourneyConversionsError
from journey_conversions_client.retry import NO_RETRY, RetryPolicy
from journey_conversions_client.tls import TlsSettings

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_TIMEOUT",
    "ERROR_DOMAIN",
    "MAX_BATCH_SIZE",
    "NO_RETRY",
    "TENANT_HEADER",
    "FieldViolation",
    "JourneyConversionsClient",
    "JourneyConversionsError",
    "RetryEvent",
    "RetryPolicy",
    "TlsSettings",
    "merge_item_results",
    "split_batches",
]
