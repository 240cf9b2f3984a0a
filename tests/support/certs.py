"""A throw-away certificate authority and server certificates for TLS tests, made with the openssl CLI.

The CA file plays the part of MAILER_SMTP_CA_FILE; no system trust store knows it, so a client
that verifies against the system CAs must refuse these servers."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

_CONFIG = """\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = placeholder

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[loopback_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:localhost, IP:127.0.0.1

[other_host_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:mail.other.test
"""


@dataclass(frozen=True)
class Certificates:
    ca_file: Path  # the CA that signed both server certificates
    cert_file: Path  # for 127.0.0.1 and localhost
    key_file: Path
    other_host_cert_file: Path  # signed by the same CA, but for mail.other.test only
    other_host_key_file: Path

    def server_context(self, *, other_host: bool = False) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if other_host:
            context.load_cert_chain(self.other_host_cert_file, self.other_host_key_file)
        else:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def openssl_available() -> bool:
    return shutil.which("openssl") is not None


def make_certificates(directory: Path) -> Certificates:
    """A CA and two server certificates (P-256 keys, valid for two days) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "openssl.cnf"
    config.write_text(_CONFIG)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", "-config", str(config), "-extensions", "ca_ext", *key, "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=Mailer test CA")
    for name, extensions, serial, subject in (
        ("server", "loopback_ext", "2", "/CN=localhost"),
        ("other", "other_host_ext", "3", "/CN=mail.other.test"),
    ):
        openssl("req", "-new", "-config", str(config), *key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", subject)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", serial,
                "-days", "2", "-extfile", str(config), "-extensions", extensions, "-out", f"{name}.pem")
    return Certificates(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server.key",
        other_host_cert_file=directory / "other.pem",
        other_host_key_file=directory / "other.key",
    )
