"""Configuration, read once from flags and environment into a frozen value."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from journey_conversions.admission import Limits


@dataclass(frozen=True, slots=True)
class Config:
    database_url: str | None  # None: start an embedded Postgres in data_dir
    data_dir: Path
    listen: str
    metrics_listen: str | None
    pool_min_size: int
    pool_max_size: int
    log_format: str  # "json", "console" or "auto" (console on a TTY)
    log_level: str
    grace_seconds: float
    drain_seconds: float
    allowed_lateness: timedelta
    max_clock_skew: timedelta
    default_tenant: str
    auth: str  # "keys" or "dev" (AUTH_MODES)
    insecure_dev_auth_on_network: bool
    key_recheck_seconds: float
    reflection: bool
    limits: Limits
    tls_cert: Path | None  # PEM certificate chain; None: plaintext
    tls_key: Path | None
    tls_client_ca: Path | None  # PEM CA bundle: clients must present a certificate it signed
    retention_every: timedelta | None  # None: the server never drops history itself
    event_loop: str  # "uvloop" or "asyncio" (EVENT_LOOPS)


def default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "journey-conversions" / "pgdata"


# (flag, environment variable, default, help); the table the README documents.
SETTINGS: tuple[tuple[str, str, str, str], ...] = (
    ("--database-url", "DATABASE_URL", "", "Postgres URL; empty starts an embedded Postgres"),
    ("--data-dir", "JC_DATA_DIR", "", "embedded Postgres data directory"),
    ("--listen", "JC_LISTEN", "127.0.0.1:50051", "gRPC listen address"),
    ("--metrics-listen", "JC_METRICS_LISTEN", "127.0.0.1:9464", "Prometheus address; empty: off"),
    ("--pool-min-size", "JC_POOL_MIN_SIZE", "2", "smallest connection pool"),
    ("--pool-max-size", "JC_POOL_MAX_SIZE", "10", "largest connection pool"),
    ("--log-format", "JC_LOG_FORMAT", "auto", "json, console, or auto (console on a TTY)"),
    ("--log-level", "JC_LOG_LEVEL", "info", "debug, info, warning or error"),
    ("--grace-seconds", "JC_GRACE_SECONDS", "10", "time in-flight calls get on shutdown"),
    (
        "--drain-seconds",
        "JC_DRAIN_SECONDS",
        "1",
        "of the grace: new calls refused, still listening",
    ),
    ("--allowed-lateness-days", "JC_ALLOWED_LATENESS_DAYS", "30", "oldest event accepted, days"),
    ("--max-clock-skew-seconds", "JC_MAX_CLOCK_SKEW_SECONDS", "300", "future tolerance, seconds"),
    ("--auth", "JC_AUTH", "keys", "keys (API keys name the tenant) or dev (x-tenant-id does)"),
    (
        "--insecure-dev-auth-on-network",
        "JC_INSECURE_DEV_AUTH_ON_NETWORK",
        "no",
        "yes: allow --auth dev on a non-loopback address, where anyone is any tenant",
    ),
    ("--default-tenant", "JC_DEFAULT_TENANT", "default", "--auth dev: tenant without x-tenant-id"),
    ("--key-recheck-seconds", "JC_KEY_RECHECK_SECONDS", "2", "revoked keys fail within this"),
    ("--reflection", "JC_REFLECTION", "auto", "on, off, or auto (on with --auth dev only)"),
    ("--max-in-flight", "JC_MAX_IN_FLIGHT", "64", "unary calls running at once, overall"),
    ("--max-in-flight-per-tenant", "JC_MAX_IN_FLIGHT_PER_TENANT", "32", "and per tenant"),
    ("--max-queue-seconds", "JC_MAX_QUEUE_SECONDS", "1", "longest wait for a call slot"),
    ("--max-streams-per-tenant", "JC_MAX_STREAMS_PER_TENANT", "8", "open event streams"),
    ("--tls-cert", "JC_TLS_CERT", "", "PEM certificate chain: serve TLS"),
    ("--tls-key", "JC_TLS_KEY", "", "PEM private key of --tls-cert"),
    ("--tls-client-ca", "JC_TLS_CLIENT_CA", "", "PEM CA: require client certificates it signed"),
    (
        "--retention-interval-hours",
        "JC_RETENTION_INTERVAL_HOURS",
        "0",
        "drop history no decision reads this often; 0: never (see `retention`)",
    ),
    ("--event-loop", "JC_EVENT_LOOP", "uvloop", "uvloop, or asyncio (the standard library's)"),
)

AUTH_MODES = ("keys", "dev")
EVENT_LOOPS = ("uvloop", "asyncio")


class ConfigError(ValueError):
    """A setting with a value the server cannot run with."""


def _choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, env_name, default, help_text in SETTINGS:
        parser.add_argument(flag, default=None, help=f"{help_text} (${env_name}, {default!r})")


def load(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Config:
    """Flags win over environment variables, which win over defaults."""
    env = os.environ if env is None else env
    values: dict[str, str] = {}
    for flag, env_name, default, _ in SETTINGS:
        attr = flag.removeprefix("--").replace("-", "_")
        flag_value = getattr(args, attr, None)
        values[attr] = flag_value if flag_value is not None else env.get(env_name, default)
    return Config(
        database_url=values["database_url"] or None,
        data_dir=Path(values["data_dir"]) if values["data_dir"] else default_data_dir(env),
        listen=values["listen"],
        metrics_listen=values["metrics_listen"] or None,
        pool_min_size=int(values["pool_min_size"]),
        pool_max_size=int(values["pool_max_size"]),
        log_format=values["log_format"],
        log_level=values["log_level"],
        grace_seconds=float(values["grace_seconds"]),
        drain_seconds=float(values["drain_seconds"]),
        allowed_lateness=timedelta(days=float(values["allowed_lateness_days"])),
        max_clock_skew=timedelta(seconds=float(values["max_clock_skew_seconds"])),
        default_tenant=values["default_tenant"],
        auth=(auth := _choice("auth", values["auth"], AUTH_MODES)),
        insecure_dev_auth_on_network=_choice(
            "insecure_dev_auth_on_network", values["insecure_dev_auth_on_network"], ("yes", "no")
        )
        == "yes",
        key_recheck_seconds=float(values["key_recheck_seconds"]),
        reflection={"on": True, "off": False, "auto": auth == "dev"}[
            _choice("reflection", values["reflection"], ("on", "off", "auto"))
        ],
        limits=_limits(values),
        retention_every=_hours(values["retention_interval_hours"]),
        event_loop=_choice("event_loop", values["event_loop"], EVENT_LOOPS),
        **_tls(values),
    )


def _hours(value: str) -> timedelta | None:
    hours = float(value)
    if hours < 0:
        raise ConfigError("--retention-interval-hours must be 0 (off) or more")
    return timedelta(hours=hours) if hours else None


def _limits(values: Mapping[str, str]) -> Limits:
    try:
        return Limits(
            in_flight=int(values["max_in_flight"]),
            in_flight_per_tenant=int(values["max_in_flight_per_tenant"]),
            queue_seconds=float(values["max_queue_seconds"]),
            streams_per_tenant=int(values["max_streams_per_tenant"]),
        )
    except ValueError as error:
        raise ConfigError(f"limits: {error}") from None


def _tls(values: Mapping[str, str]) -> dict[str, Path | None]:
    paths = {
        name: Path(values[name]) if values[name] else None
        for name in ("tls_cert", "tls_key", "tls_client_ca")
    }
    if (paths["tls_cert"] is None) != (paths["tls_key"] is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if paths["tls_client_ca"] is not None and paths["tls_cert"] is None:
        raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key")
    for name, path in paths.items():
        if path is not None and not path.is_file():
            raise ConfigError(f"--{name.replace('_', '-')}: no file {path}")
    return paths


def from_values(argv: Sequence[str] = (), env: Mapping[str, str] | None = None) -> Config:
    """A Config from flag-style arguments, for tests and embedding."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return load(parser.parse_args(list(argv)), {} if env is None else env)
