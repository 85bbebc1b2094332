"""Broker URLs as the .NET producer takes them (``src/Producer/Broker/BrokerAddress.cs``).

``amqp[s]://[user[:password]@]host[:port][,host[:port]...][/vhost][?options]``: several comma-separated hosts are the
nodes of one cluster (the client connects to the first that answers). Options: ``cacertfile`` (PEM CA the server
certificate must chain to; default: the system's roots), ``certfile`` + ``keyfile`` (PEM client certificate for mutual
TLS), ``server_name_indication`` (name expected in the server certificate; default: the host), ``verify=verify_none``
(accept any server certificate: local development only), ``heartbeat`` (seconds), ``connection_timeout`` (milliseconds).
The password may also come from the file named by ``LANEQUEUE_RABBITMQ_PASSWORD_FILE`` when the URL has none.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple
from urllib.parse import unquote

__all__ = ["BrokerAddress", "DEFAULT_URL", "URL_VARIABLE", "PASSWORD_FILE_VARIABLE", "redact", "url_from_environment"]

URL_VARIABLE = "LANEQUEUE_RABBITMQ_URL"
PASSWORD_FILE_VARIABLE = "LANEQUEUE_RABBITMQ_PASSWORD_FILE"
DEFAULT_URL = "amqp://guest:guest@localhost:5672/lanequeue"
_KNOWN_OPTIONS = ("cacertfile", "certfile", "keyfile", "server_name_indication", "verify", "heartbeat", "connection_timeout")


def url_from_environment() -> str:
    """``LANEQUEUE_RABBITMQ_URL``, else ``amqp://guest:guest@localhost:5672/lanequeue``."""
    return os.environ.get(URL_VARIABLE) or DEFAULT_URL


def redact(url: str) -> str:
    """The URL without its password (for errors and logs)."""
    scheme_end = url.find("://")
    start = scheme_end + 3 if scheme_end >= 0 else 0
    ends = [i for i in (url.find("/", start), url.find("?", start)) if i >= 0]
    end = min(ends) if ends else len(url)
    at = url.rfind("@", start, end)
    if at < 0:
        return url
    colon = url.find(":", start, at)
    return url if colon < 0 else url[: colon + 1] + "***" + url[at:]


@dataclass(frozen=True)
class BrokerAddress:
    scheme: str
    hosts: List[Tuple[str, int]]
    user: Optional[str] = None
    password: Optional[str] = None
    vhost: str = "/"
    options: Dict[str, str] = field(default_factory=dict)

    @property
    def is_tls(self) -> bool:
        return self.scheme == "amqps"

    @property
    def heartbeat(self) -> int:
        return int(self.options.get("heartbeat", "10"))

    @property
    def connection_timeout(self) -> float:
        return int(self.options.get("connection_timeout", "10000")) / 1000

    @staticmethod
    def parse(url: str) -> "BrokerAddress":
        """Parses a broker URL; ``ValueError`` says what is wrong with it."""
        if not url or not url.strip():
            raise ValueError("the broker URL is empty")
        scheme_end = url.find("://")
        scheme = url[:scheme_end].lower() if scheme_end > 0 else ""
        if scheme not in ("amqp", "amqps"):
            raise ValueError(f"the broker URL must start with amqp:// or amqps:// (got '{redact(url)}')")
        rest = url[scheme_end + 3 :]
        query = ""
        if "?" in rest:
            rest, query = rest.split("?", 1)
        path = ""
        if "/" in rest:
            rest, path = rest.split("/", 1)
        user: Optional[str] = None
        password: Optional[str] = None
        at = rest.rfind("@")
        if at >= 0:
            info, rest = rest[:at], rest[at + 1 :]
            if ":" in info:
                user, password = unquote(info.split(":", 1)[0]), unquote(info.split(":", 1)[1])
            else:
                user = unquote(info)
        default_port = 5671 if scheme == "amqps" else 5672
        hosts = []
        for part in (p.strip() for p in rest.split(",")):
            host = _host(part, default_port)
            if host is None:
                raise ValueError(
                    f"bad host '{part}' in the broker URL '{redact(url)}' (expected host[:port], several separated by commas)"
                )
            hosts.append(host)
        options: Dict[str, str] = {}
        for pair in (p for p in query.split("&") if p):
            key, _, value = pair.partition("=")
            options[unquote(key).lower()] = unquote(value)
        for key in options:
            if key not in _KNOWN_OPTIONS:
                raise ValueError(
                    f"unknown option '{key}' in the broker URL (known: cacertfile, certfile, keyfile, server_name_indication, verify)"
                )
        if options.get("verify", "verify_peer") not in ("verify_peer", "verify_none"):
            raise ValueError(f"verify must be verify_peer or verify_none, got '{options['verify']}'")
        if ("certfile" in options) != ("keyfile" in options):
            raise ValueError("certfile and keyfile go together (PEM client certificate and its key)")
        if password is None and os.environ.get(PASSWORD_FILE_VARIABLE):
            try:
                with open(os.environ[PASSWORD_FILE_VARIABLE], encoding="utf-8") as file:
                    password = file.read().rstrip("\r\n")
            except OSError as ex:
                raise ValueError(f"cannot read the password file named by {PASSWORD_FILE_VARIABLE}: {ex}") from None
        vhost = unquote(path.strip("/")) if path.strip("/") else "/"
        return BrokerAddress(scheme, hosts, user or None, password, vhost, options)

    def ssl_context(self, host: str) -> Optional[ssl.SSLContext]:
        """The TLS settings of the URL for a connection to ``host`` (None for amqp://)."""
        if not self.is_tls:
            return None
        server_name = self.options.get("server_name_indication")
        context: ssl.SSLContext = _NamedContext(ssl.PROTOCOL_TLS_CLIENT, server_name) if server_name else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.options.get("verify") == "verify_none":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context.check_hostname = True
            context.verify_mode = ssl.CERT_REQUIRED
            if "cacertfile" in self.options:
                context.load_verify_locations(cafile=self.options["cacertfile"])
            else:
                context.load_default_certs()
        if "certfile" in self.options:
            context.load_cert_chain(self.options["certfile"], self.options["keyfile"])
        return context


class _NamedContext(ssl.SSLContext):
    """An SSL context that checks (and sends as SNI) another name than the host it connects to."""

    server_name: Optional[str]

    def __new__(cls, protocol: int, server_name: Optional[str]) -> "_NamedContext":
        context = super().__new__(cls, protocol)
        context.server_name = server_name
        return context

    def __init__(self, protocol: int, server_name: Optional[str]) -> None:  # noqa: D107 - set in __new__
        pass

    def wrap_bio(self, incoming, outgoing, server_side=False, server_hostname=None, session=None):  # type: ignore[no-untyped-def,override]
        return super().wrap_bio(incoming, outgoing, server_side, self.server_name or server_hostname, session)

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True, suppress_ragged_eofs=True, server_hostname=None, session=None):  # type: ignore[no-untyped-def,override]
        return super().wrap_socket(sock, server_side, do_handshake_on_connect, suppress_ragged_eofs, self.server_name or server_hostname, session)


def _host(text: str, default_port: int) -> Optional[Tuple[str, int]]:
    if text == "":
        return ("localhost", default_port)
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            return None
        host, port_text = text[1:close], text[close + 1 :].lstrip(":")
    else:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        port = int(port_text)
    if not host or "@" in host:
        return None
    return (host, port)
