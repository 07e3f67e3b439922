"""Assembles the grpc.aio server (service, health, reflection) and runs it until a signal."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from journeys.conversions.v1 import service_pb2, service_pb2_grpc

from journey_conversions import db, logs, metrics
from journey_conversions.clock import TimePolicy
from journey_conversions.config import Config
from journey_conversions.embedded_pg import EmbeddedPostgres
from journey_conversions.logs import log
from journey_conversions.notifier import Notifier
from journey_conversions.servicer import JourneyConversionsServicer

SERVICE_NAME = service_pb2.DESCRIPTOR.services_by_name["JourneyConversionsService"].full_name
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # a full batch of 1000 large items fits


@dataclass
class App:
    server: grpc.aio.Server
    port: int
    servicer: JourneyConversionsServicer
    health: HealthServicer
    pool: asyncpg.Pool
    notifier: Notifier

    async def stop(self, grace: float) -> None:
        """Health NOT_SERVING first, then in-flight calls get `grace` seconds, then the pool
        closes."""
        await self.health.enter_graceful_shutdown()
        self.servicer.stopping.set()  # conversion-event streams end cleanly
        await self.server.stop(grace)
        await self.notifier.stop()
        await self.pool.close()


async def build(config: Config, database_url: str, listen: str | None = None) -> App:
    """A started server on `listen` (port 0 picks a free port; App.port tells which)."""
    pool = await db.create_pool(database_url, config.pool_min_size, config.pool_max_size)
    notifier = Notifier()
    await notifier.start(database_url)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
    )
    servicer = JourneyConversionsServicer(
        pool,
        TimePolicy(config.allowed_lateness, config.max_clock_skew),
        config.default_tenant,
        notifier,
    )
    service_pb2_grpc.add_JourneyConversionsServiceServicer_to_server(servicer, server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    port = server.add_insecure_port(listen or config.listen)
    await server.start()
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return App(server, port, servicer, health, pool, notifier)


def _pool_gauges(pool: asyncpg.Pool) -> None:
    metrics.POOL_SIZE.set(pool.get_size())
    metrics.POOL_IN_USE.set(pool.get_size() - pool.get_idle_size())


async def _watch_pool(pool: asyncpg.Pool) -> None:
    while True:
        _pool_gauges(pool)
        await asyncio.sleep(5)


async def serve(config: Config) -> None:
    logs.configure(config.log_format, config.log_level)
    embedded: EmbeddedPostgres | None = None
    url = config.database_url
    if url is None:
        embedded = EmbeddedPostgres(config.data_dir)
        url = embedded.start()
        log.info("embedded postgres started", data_dir=str(config.data_dir))
    try:
        await db.migrate(url)
        app = await build(config, url)
        if config.metrics_listen:
            metrics.serve(config.metrics_listen)
        log.info(
            "serving",
            listen=config.listen,
            port=app.port,
            metrics=config.metrics_listen or "off",
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        watcher = asyncio.create_task(_watch_pool(app.pool))
        await stop.wait()
        log.info("shutting down", grace_seconds=config.grace_seconds)
        watcher.cancel()
        await app.stop(config.grace_seconds)
        log.info("stopped")
    finally:
        if embedded is not None:
            embedded.stop()
