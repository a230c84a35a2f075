"""Kafka client security for every bcfwatch client, from settings/environment (docs/security.md).

One place decides how a client authenticates and encrypts; each construction site adds the options for
its library with one call:

- kafka-python (``KafkaProducer``/``KafkaConsumer``/``KafkaAdminClient``): ``**kafka_python_options()``
- aiokafka (``AIOKafkaProducer``/``AIOKafkaConsumer``): ``**aiokafka_options()``
- Faust (``faust.App``): ``broker_credentials=faust_broker_credentials()``

Every function returns "nothing to add" ({} or None) in plaintext mode, the default for the local demo.

Settings (environment):

``BCFWATCH_KAFKA_SECURITY_PROTOCOL``  ``PLAINTEXT`` (default), ``SSL`` or ``SASL_SSL``
``BCFWATCH_KAFKA_SASL_MECHANISM``    ``SCRAM-SHA-512`` (default) or ``SCRAM-SHA-256``
``BCFWATCH_KAFKA_USERNAME``          the service principal (e.g. ``replay``)
``BCFWATCH_KAFKA_PASSWORD_FILE``     a file holding only the password; not group/world readable
``BCFWATCH_KAFKA_CA_FILE``           PEM file of the CA that signed the broker's certificate
                                     (default: the system's trust store)

SASL over plaintext is refused: a password never crosses the network unencrypted.
"""

from __future__ import annotations

import os
import ssl
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bcfwatch.infra.errors import KafkaSecurityError

PROTOCOL_ENV = "BCFWATCH_KAFKA_SECURITY_PROTOCOL"
MECHANISM_ENV = "BCFWATCH_KAFKA_SASL_MECHANISM"
USERNAME_ENV = "BCFWATCH_KAFKA_USERNAME"
PASSWORD_FILE_ENV = "BCFWATCH_KAFKA_PASSWORD_FILE"
CA_FILE_ENV = "BCFWATCH_KAFKA_CA_FILE"
SETTINGS_ENV = (PROTOCOL_ENV, MECHANISM_ENV, USERNAME_ENV, PASSWORD_FILE_ENV, CA_FILE_ENV)

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
DEFAULT_MECHANISM = "SCRAM-SHA-512"


def check_secret_file(path: Path, what: str) -> None:
    """Refuse a secret file that is missing or readable by the group or others (mode must be 0600 or 0400)."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise KafkaSecurityError(f"cannot read the {what} {path}: {error.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KafkaSecurityError(
            f"the {what} {path} is readable by its group or others (mode {stat.S_IMODE(mode):04o}); "
            f"run `chmod 600 {path}`"
        )


@dataclass(frozen=True)
class KafkaSecurity:
    """How one client connects: protocol, SASL mechanism and principal, password file, CA file."""

    protocol: str = "PLAINTEXT"
    mechanism: str = DEFAULT_MECHANISM
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            hint = " (SASL over plaintext would send the password unencrypted)" if self.protocol == "SASL_PLAINTEXT" \
                else ""
            raise KafkaSecurityError(f"{PROTOCOL_ENV}={self.protocol!r} is not supported{hint}; "
                                     f"use one of {', '.join(PROTOCOLS)}")
        if self.sasl:
            if self.mechanism not in MECHANISMS:
                raise KafkaSecurityError(f"{MECHANISM_ENV}={self.mechanism!r} is not supported; "
                                         f"use one of {', '.join(MECHANISMS)}")
            if not self.username or self.password_file is None:
                raise KafkaSecurityError(f"{PROTOCOL_ENV}={self.protocol} needs {USERNAME_ENV} and "
                                         f"{PASSWORD_FILE_ENV} (see `bcfwatch kafka env --secure --service NAME`)")
        if self.ca_file is not None and not self.ca_file.is_file():
            raise KafkaSecurityError(f"{CA_FILE_ENV}: no CA file at {self.ca_file}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KafkaSecurity:
        env = os.environ if environ is None else environ

        def setting(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        password_file, ca_file = setting(PASSWORD_FILE_ENV), setting(CA_FILE_ENV)
        return cls(
            protocol=(setting(PROTOCOL_ENV) or "PLAINTEXT").upper(),
            mechanism=(setting(MECHANISM_ENV) or DEFAULT_MECHANISM).upper(),
            username=setting(USERNAME_ENV),
            password_file=Path(password_file) if password_file else None,
            ca_file=Path(ca_file) if ca_file else None,
        )

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def password(self) -> str:
        """The password from its file (checked for safe permissions); never logged."""
        if self.password_file is None:
            raise KafkaSecurityError(f"{PASSWORD_FILE_ENV} is not set")
        check_secret_file(self.password_file, "Kafka password file")
        password = self.password_file.read_text().strip()
        if not password:
            raise KafkaSecurityError(f"the Kafka password file {self.password_file} is empty")
        return password

    def ssl_context(self) -> ssl.SSLContext | None:
        """A verifying TLS 1.2+ client context (hostname checked) trusting the CA file, or None without TLS."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def env(self) -> dict[str, str]:
        """These settings as the environment variables that reproduce them."""
        values = {PROTOCOL_ENV: self.protocol}
        if self.sasl:
            values.update({MECHANISM_ENV: self.mechanism, USERNAME_ENV: self.username or "",
                           PASSWORD_FILE_ENV: str(self.password_file)})
        if self.ca_file is not None:
            values[CA_FILE_ENV] = str(self.ca_file)
        return values

    def kafka_python_options(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients; aiokafka takes the very same names."""
        if self.protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": self.protocol, "ssl_context": self.ssl_context()}
        if self.sasl:
            options.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.username,
                           sasl_plain_password=self.password())
        return options

    def aiokafka_options(self) -> dict[str, Any]:
        return self.kafka_python_options()

    def faust_broker_credentials(self) -> Any:
        """``broker_credentials`` for ``faust.App`` (None in plaintext mode)."""
        if self.protocol == "PLAINTEXT":
            return None
        import faust

        if self.sasl:
            return faust.SASLCredentials(username=self.username, password=self.password(),
                                         mechanism=self.mechanism, ssl_context=self.ssl_context())
        return faust.SSLCredentials(self.ssl_context())


def kafka_python_options() -> dict[str, Any]:
    """Security keyword arguments for kafka-python clients, from the environment ({} in plaintext mode)."""
    return KafkaSecurity.from_env().kafka_python_options()


def aiokafka_options() -> dict[str, Any]:
    """Security keyword arguments for aiokafka clients, from the environment ({} in plaintext mode)."""
    return KafkaSecurity.from_env().aiokafka_options()


def faust_broker_credentials() -> Any:
    """Faust's ``broker_credentials`` from the environment (None in plaintext mode)."""
    return KafkaSecurity.from_env().faust_broker_credentials()
