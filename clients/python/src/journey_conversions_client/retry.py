"""Retry policy: exponential backoff with full jitter, for UNAVAILABLE (when repeating the call
is safe) and for RESOURCE_EXHAUSTED that says the server did nothing (reason OVERLOADED)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import grpc


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a retryable call is tried again.

    A call is retried only when it failed with one of ``retryable_codes`` (UNAVAILABLE: the
    server could not reach its database, or the server could not be reached) and it is safe to
    repeat: reads, and writes that carry an idempotency key (request_id, event_id,
    enrollment_id), or any call refused UNAVAILABLE with the reason SHUTTING_DOWN (a draining
    server started nothing). With ``retry_overloaded``, a call refused RESOURCE_EXHAUSTED with the
    reason OVERLOADED (the server was at its limit of calls in flight and started nothing) is
    retried too, whatever it is. Other RESOURCE_EXHAUSTED errors (a message over the size
    limit) are not: the same call would fail the same way. The n-th retry waits a random time
    between 0 and ``min(max_backoff, initial_backoff * multiplier ** (n - 1))`` seconds ("full
    jitter"), and no retry starts after the call's deadline.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.05
    max_backoff: float = 2.0
    multiplier: float = 2.0
    retryable_codes: frozenset[grpc.StatusCode] = field(
        default=frozenset({grpc.StatusCode.UNAVAILABLE})
    )
    retry_overloaded: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("need 0 <= initial_backoff <= max_backoff")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """The wait before retry number ``retry`` (1 for the first retry), in seconds."""
        if retry < 1:
            raise ValueError("retry counts from 1")
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        return rng.uniform(0.0, ceiling)


NO_RETRY = RetryPolicy(max_attempts=1)
"""A policy that never retries."""
