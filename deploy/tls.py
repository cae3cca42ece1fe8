"""A local certificate authority and server certificate for the MQTT TLS
listener of `agri up --tls`. Production takes the operator's certificate
instead (see the operations guide)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agri.deploy.broker_config import TlsFiles

CA_DAYS = 3650
SERVER_DAYS = 825
HOSTS = ("localhost", "127.0.0.1", "::1")


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "agri platform (local)"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _alt_names(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_local_ca(folder: Path, *, hosts: tuple[str, ...] = HOSTS,
                  key_owner: tuple[int, int] | None = None) -> TlsFiles:
    """Create (once) ``ca.crt``, ``server.crt`` and ``server.key`` in ``folder``;
    the keys are written mode 0600 from the start, the server key owned by
    ``key_owner`` (the broker's user). Later calls reuse them."""
    from agri.deploy.servers import write_private

    files = TlsFiles(folder / "ca.crt", folder / "server.crt", folder / "server.key")
    if all(p.exists() for p in (files.cafile, files.certfile, files.keyfile)):
        return files
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder().subject_name(_name("agri local CA"))
        .issuer_name(_name("agri local CA")).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(_alt_names(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256()))
    write_private(folder / "ca.key", _pem_key(ca_key))
    write_private(files.keyfile, _pem_key(key), owner=key_owner)
    write_private(files.certfile, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    write_private(files.cafile, ca_cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return files
