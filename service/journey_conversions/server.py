"""Assembles the grpc.aio server (service, health, reflection) and runs it until a signal."""

from __future__ import annotations

import asyncio
import ipaddress
import signal
from dataclasses import dataclass

import asyncpg
import grpc
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from journeys.conversions.v1 import service_pb2

from journey_conversions import db, logs, metrics
from journey_conversions.admission import Admission
from journey_conversions.auth import Authenticator, DevelopmentAuthenticator, KeyAuthenticator
from journey_conversions.clock import TimePolicy
from journey_conversions.config import Config, ConfigError
from journey_conversions.db_watch import DatabaseWatch
from journey_conversions.embedded_pg import postgres_url
from journey_conversions.logs import log
from journey_conversions.maintenance import Maintenance
from journey_conversions.notifier import Notifier
from journey_conversions.registration import add_service
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
    watch: DatabaseWatch  # health NOT_SERVING while the database is out of reach
    maintenance: Maintenance  # partitions ahead of time; retention when configured

    async def stop(self, grace: float, drain: float = 0.0) -> None:
        """Health NOT_SERVING first; for `drain` seconds (within the grace) the server still
        listens but answers new calls UNAVAILABLE (SHUTTING_DOWN), so that load balancers and
        clients move away; then in-flight calls get the rest of `grace`, then the pool closes.
        Without the drain, calls already queued in grpc when it stops listening end CANCELLED
        (grpc/grpc#41785), which clients do not retry."""
        await self.watch.stop()  # never SERVING again, and off the pool before it closes
        await self.maintenance.stop()
        await self.health.enter_graceful_shutdown()
        self.servicer.stopping.set()  # new calls refused, conversion-event streams end
        drain = min(drain, grace)
        if drain > 0:
            await asyncio.sleep(drain)
        await self.server.stop(grace - drain)
        await self.servicer.group_commit.drain()  # batches of calls cut off by the grace
        await self.notifier.stop()
        await self.pool.close()


async def build(config: Config, database_url: str, listen: str | None = None) -> App:
    """A started server on `listen` (port 0 picks a free port; App.port tells which)."""
    pool = await db.create_pool(database_url, config.pool_min_size, config.pool_max_size)
    policy = TimePolicy(config.allowed_lateness, config.max_clock_skew)
    maintenance = Maintenance(pool, policy, config.retention_every)
    await maintenance.start()  # before any call: every accepted time has its partition
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
        policy,
        authenticator(config, pool),
        notifier,
        Admission(config.limits),
    )
    add_service(servicer, server)  # bad request bytes: INVALID_ARGUMENT, not UNKNOWN
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    if config.reflection:
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
    port = _add_port(server, listen or config.listen, config)
    await server.start()
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    watch = DatabaseWatch(pool, health, ("", SERVICE_NAME))
    watch.start()
    return App(server, port, servicer, health, pool, notifier, watch, maintenance)


def _add_port(server: grpc.aio.Server, listen: str, config: Config) -> int:
    """TLS when the config has a certificate (mutual TLS when it has a client CA)."""
    if config.tls_cert is None or config.tls_key is None:
        return server.add_insecure_port(listen)
    client_ca = config.tls_client_ca.read_bytes() if config.tls_client_ca else None
    credentials = grpc.ssl_server_credentials(
        [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )
    return server.add_secure_port(listen, credentials)


def authenticator(config: Config, pool: asyncpg.Pool) -> Authenticator:
    if config.auth == "dev":
        return DevelopmentAuthenticator(config.default_tenant)
    return KeyAuthenticator(pool, config.key_recheck_seconds)


def is_loopback(listen: str) -> bool:
    """Whether a listen address (host:port, [v6]:port, unix:path) is reachable only from this
    machine."""
    if listen.startswith(("unix:", "unix-abstract:")):
        return True
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_auth(config: Config) -> None:
    """Development auth (the header names the tenant) only where no one else can connect,
    unless the operator says otherwise in so many words; either way, said loudly."""
    if config.auth != "dev":
        return
    if not is_loopback(config.listen) and not config.insecure_dev_auth_on_network:
        raise ConfigError(
            f"--auth dev lets any caller act as any tenant; {config.listen} is not a loopback"
            " address. Use --auth keys, or add --insecure-dev-auth-on-network yes"
        )
    log.warning(
        "development auth: the x-tenant-id header chooses the tenant and no key is checked",
        listen=config.listen,
        default_tenant=config.default_tenant,
    )


def _pool_gauges(pool: asyncpg.Pool) -> None:
    metrics.POOL_SIZE.set(pool.get_size())
    metrics.POOL_IN_USE.set(pool.get_size() - pool.get_idle_size())


async def _watch_pool(pool: asyncpg.Pool) -> None:
    while True:
        _pool_gauges(pool)
        await asyncio.sleep(5)


def run(config: Config) -> None:
    """Serves until SIGTERM or SIGINT, on the event loop the config names. uvloop by default:
    the loop's own work and asyncpg's protocol cost less CPU on it, and a goal event's
    transaction waits on several round trips to Postgres (gRPC's I/O runs on its own threads
    either way). At 500 goal events/s on the 10M tenant, two alternating pairs of runs gave p99
    35 and 30 ms against 160 and 58 ms on asyncio's loop (bench.flood (e)); more runs on uvloop
    spread from 22 to 137 ms, so the gain is smaller than that pair suggests."""
    if config.event_loop == "uvloop":
        uvloop.run(serve(config))
    else:
        asyncio.run(serve(config))


async def serve(config: Config) -> None:
    logs.configure(config.log_format, config.log_level)
    check_auth(config)
    with postgres_url(config.database_url, config.data_dir) as url:
        if config.database_url is None:
            log.info("embedded postgres started", data_dir=str(config.data_dir))
        await db.migrate(url)
        app = await build(config, url)
        if config.metrics_listen:
            metrics.serve(config.metrics_listen)
        log.info(
            "serving",
            listen=config.listen,
            port=app.port,
            metrics=config.metrics_listen or "off",
            auth=config.auth,
            reflection=config.reflection,
            tls="mutual" if config.tls_client_ca else "on" if config.tls_cert else "off",
            event_loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        watcher = asyncio.create_task(_watch_pool(app.pool))
        await stop.wait()
        log.info(
            "shutting down", grace_seconds=config.grace_seconds, drain_seconds=config.drain_seconds
        )
        watcher.cancel()
        await app.stop(config.grace_seconds, config.drain_seconds)
        log.info("stopped")
