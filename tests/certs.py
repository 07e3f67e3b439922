"""Test certificates made with openssl: a CA, a server certificate for 127.0.0.1 and localhost,
and client certificates for mutual TLS, each naming its tenant (and scope) as the server's
mapping expects (auth.py: URI SANs urn:journey-conversions:tenant:<t> and :scope:<s>)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Pair:
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str = "test-ca") -> Pair:
    ca = Pair(directory / f"{name}.pem", directory / f"{name}-key.pem")
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(ca.key), "-out", str(ca.cert), "-days", "2", "-subj", f"/CN={name}",
    )  # fmt: skip
    return ca


def issue(ca: Pair, directory: Path, name: str, subject_alt_names: list[str]) -> Pair:
    """A certificate signed by `ca` with these subjectAltName entries (e.g. "DNS:localhost")."""
    pair = Pair(directory / f"{name}.pem", directory / f"{name}-key.pem")
    request = directory / f"{name}.csr"
    extensions = directory / f"{name}.ext"
    extensions.write_text(f"subjectAltName={','.join(subject_alt_names)}\n")
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(pair.key), "-out", str(request), "-subj", f"/CN={name}",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-out", str(pair.cert), "-days", "2", "-extfile", str(extensions),
    )  # fmt: skip
    return pair


def server_pair(ca: Pair, directory: Path) -> Pair:
    return issue(ca, directory, "server", ["DNS:localhost", "IP:127.0.0.1"])


def client_pair(ca: Pair, directory: Path, tenant: str | None, scope: str | None = None) -> Pair:
    names = [f"DNS:client-{tenant or 'nobody'}.test"]
    if tenant is not None:
        names.append(f"URI:urn:journey-conversions:tenant:{tenant}")
    if scope is not None:
        names.append(f"URI:urn:journey-conversions:scope:{scope}")
    return issue(ca, directory, f"client-{tenant or 'nobody'}-{scope or 'default'}", names)
