"""A throwaway certificate authority for TLS tests: a CA, a server certificate for 127.0.0.1, client certificates.

Made with the ``cryptography`` package (a test extra), EC P-256 keys, valid for one day; written as PEM files.

Example::

    ca = ThrowawayCA(tmp_path, "test CA")
    server = ca.issue("server", server=True)       # server.cert, server.key: SAN 127.0.0.1, localhost
    client = ca.issue("prometheus")                # a client certificate (clientAuth)
    capath = ca.hashed_directory(tmp_path / "cas")  # the CA as OpenSSL's capath wants it (c_rehash layout)
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Issued", "ThrowawayCA"]

_SKEW = datetime.timedelta(minutes=5)
_LIFETIME = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


class ThrowawayCA:
    """A self-signed CA whose certificate is ``<directory>/<slug>-ca.pem``; ``issue`` signs leaf certificates."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self._slug = name.lower().replace(" ", "-")
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = _name(name)
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(self._name).issuer_name(self._name)
                .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - _SKEW).not_valid_after(now + _LIFETIME)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, encipher_only=False, decipher_only=False),
                               critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
                .sign(self._key, hashes.SHA256()))
        self.cert = directory / f"{self._slug}-ca.pem"
        self.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._common_name = name

    def hashed_directory(self, directory: Path) -> Path:
        """A directory holding the CA certificate as ``<subject hash>.0``, the names OpenSSL looks up in a capath.

        The hash is OpenSSL's ``X509_NAME_hash``: SHA-1 of the canonical DER of the subject (values lower-cased,
        spaces collapsed, without the outer SEQUENCE), first four bytes little-endian.
        """
        canonical = " ".join(self._common_name.lower().split())
        der = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, canonical)]).public_bytes()
        digest = hashlib.sha1(der[2:]).digest()  # a short name: two bytes of SEQUENCE header
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{int.from_bytes(digest[:4], 'little'):08x}.0").write_bytes(self.cert.read_bytes())
        return directory

    def issue(self, common_name: str, *, server: bool = False) -> Issued:
        """A leaf certificate signed by this CA: for a server on 127.0.0.1/localhost, or for a client."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(self._name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - _SKEW).not_valid_after(now + _LIFETIME)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                                  critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        stem = self.directory / f"{self._slug}-{common_name}"
        issued = Issued(stem.with_suffix(".pem"), stem.with_suffix(".key"))
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, issued.key)
        return issued
