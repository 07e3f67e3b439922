"""Prometheus metrics, served on their own HTTP port."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

CALLS = Counter("jc_grpc_calls_total", "gRPC calls by method and status code", ["method", "code"])
LATENCY = Histogram(
    "jc_grpc_call_seconds",
    "gRPC call latency by method",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS = Counter(
    "jc_events_total",
    "Events written, by kind (touchpoint, goal_event, enrollment, exit) and result",
    ["kind", "result"],
)
REJECTED = Counter(
    "jc_overload_rejections_total", "Calls refused RESOURCE_EXHAUSTED by a limit", ["limit"]
)
GROUP_COMMIT_ITEMS = Histogram(
    "jc_group_commit_items",
    "Unary writes per shared transaction (group_commit.py), by kind",
    ["kind"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 500),
)
STREAM_MESSAGES = Counter(
    "jc_stream_ingest_messages_total",
    "StreamIngest messages answered, by outcome (written; refused: the whole message)",
    ["outcome"],
)
STREAM_UNANSWERED = Gauge(
    "jc_stream_ingest_unanswered",
    "StreamIngest messages read and not yet answered, over every stream (at most 4 a stream)",
)
POOL_IN_USE = Gauge("jc_db_pool_connections_in_use", "Database connections checked out")
POOL_SIZE = Gauge("jc_db_pool_connections", "Database connections open")


def serve(listen: str) -> None:
    host, _, port = listen.rpartition(":")
    start_http_server(int(port), addr=host or "0.0.0.0")
