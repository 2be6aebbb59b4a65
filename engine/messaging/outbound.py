"""The outbound guard: where provider and web-API calls may connect.

Marketers save provider configs holding URLs (a SendGrid API host, Twilio and FCM base
URLs, a webhook or loyalty-program URL, with custom headers) and SMTP hosts, and the
dispatcher calls them from inside our network with our credentials. Pointed at 127.0.0.1,
10.0.0.0/8 or 169.254.169.254, that is a request forged from inside (SSRF): an admin port,
a database, the cloud's metadata service and its credentials. So no outbound connection goes
to an address that is not public (loopback, private, shared 100.64/10, link-local, unique-
local, site-local, multicast, unspecified, reserved, documentation) or to a cloud metadata
service by name (metadata.google.internal), unless the operator allow-lists it. An IPv6
address carrying an IPv4 one (::ffff:127.0.0.1, 6to4, NAT64) is judged by the IPv4.

Two checks, one rule:

- When a config is saved (`refusal`, called by engine/messaging/providers.py), its host is resolved and
  each address judged, so the marketer hears at once that `settings/url` "points at an
  internal address (127.0.0.1); ask your operator to allow it". A name that does not resolve
  now is let through: the second check guards the send.
- When a connection is made, the check that counts: the host is resolved once, every
  address is judged (one internal address refuses the name), and the socket connects to an
  address that was judged, never to the name again. DNS that answers a public address at
  save and 127.0.0.1 at send (rebinding), or one thing to a check and another to a connect,
  gets nowhere. TLS still verifies the certificate for, and sends SNI of, the name: only the
  TCP connect uses the address. Each client library gets the same function at its socket:
  - httpx (SMS, push, web API, loyalty): `http_client()`, whose connection pool has
    `GuardedBackend`, an httpcore network backend connecting to checked addresses only;
  - the SendGrid SDK (python_http_client over urllib): `url_opener()`, whose HTTP(S)
    connections take their socket from `create_connection`, redirects included;
  - SMTP: `SMTP`, an smtplib.SMTP whose `_get_socket` is `create_connection`.
  None of them goes through HTTP(S)_PROXY from the environment: a proxy would resolve and
  connect where this guard cannot see.

Odd spellings of an address (0x7f000001, 2130706433, 127.1, 0177.0.0.1, [::ffff:127.0.0.1])
are never parsed here: the system resolver (getaddrinfo) reads them exactly as it does when
the connection is made, and what it answers is judged.

CC_OUTBOUND_ALLOW (comma-separated) lets chosen internal targets through: address blocks in
CIDR notation (`10.1.2.0/24`, `127.0.0.1/32`, `::1/128`) allow any name that resolves into
them; host names (`localhost`, `crm.corp.example`) allow that name whatever it resolves to.
It is read from the environment at each check (tests change it; processes inherit it).

A refused connection raises `OutboundRefused`, deliberately not an OSError, so no client's
network-error handling mistakes it for a passing fault to retry: the dispatcher fails the
batch with its message.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import os
import smtplib
import socket
import ssl
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

ALLOW_SETTING = "CC_OUTBOUND_ALLOW"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: cloud metadata services by name (their addresses are link-local or unique-local anyway)
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                            "instance-data.ec2.internal"})
#: cloud metadata services by address: AWS, GCP, Azure, OpenStack; AWS over IPv6; Alibaba
METADATA_ADDRESSES = frozenset(map(ipaddress.ip_address, ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")))
#: NAT64's well-known prefix: its last 32 bits are an IPv4 address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")

#: what httpx's own transport allows (httpx.HTTPTransport's defaults)
_LIMITS: dict[str, Any] = {"max_connections": 100, "max_keepalive_connections": 20, "keepalive_expiry": 5.0}


class OutboundRefused(Exception):
    """A connection to a target the guard does not allow. Its message is for the outbox's
    error column: what was refused, why, and who can change it."""


@dataclass(frozen=True)
class AllowList:
    """The operator's exceptions (CC_OUTBOUND_ALLOW): address blocks and host names."""

    networks: tuple[IPNetwork, ...] = ()
    names: frozenset[str] = frozenset()

    def allows_name(self, host: str) -> bool:
        return _name(host) in self.names

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks if network.version == address.version)


def allow_list() -> AllowList:
    """The allow-list in the environment now. Raises ValueError naming a malformed entry."""
    return _parse(os.environ.get(ALLOW_SETTING, ""))


@functools.lru_cache(maxsize=8)
def _parse(text: str) -> AllowList:
    networks: list[IPNetwork] = []
    names: set[str] = set()
    for entry in filter(None, (part.strip() for part in text.replace(" ", ",").split(","))):
        if "/" in entry or entry.replace(".", "").isdigit() or ":" in entry:
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                raise ValueError(f"{ALLOW_SETTING}: {entry!r} is neither an address block (10.1.2.0/24) "
                                 "nor a host name") from None
        else:
            names.add(_name(entry))
    return AllowList(tuple(networks), frozenset(names))


def describe() -> str:
    """A line for start-up logs: what the guard lets through (SystemExit on a malformed
    allow-list, so a process that would refuse every send does not start)."""
    try:
        allowed = allow_list()
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    shown = [*map(str, allowed.networks), *sorted(allowed.names)]
    return (f"outbound calls may reach public addresses only, and {', '.join(shown)} ({ALLOW_SETTING})" if shown
            else f"outbound calls may reach public addresses only ({ALLOW_SETTING} is empty)")


# --------------------------------------------------------------------------- judging


def internal_kind(address: IPAddress) -> str | None:
    """What makes `address` internal ("loopback", "private", ...), or None for a public one."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        return internal_kind(inner)
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    for kind, found in (("loopback", address.is_loopback), ("link-local", address.is_link_local),
                        ("multicast", address.is_multicast), ("unspecified", address.is_unspecified)):
        if found:
            return kind
    if address.version == 6 and address in _UNIQUE_LOCAL:
        return "unique-local"
    if address.version == 6 and address in _SITE_LOCAL:
        return "site-local"
    if address.is_private:
        return "private"
    if address.is_reserved or not address.is_global:
        return "reserved"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one reaches (mapped, 6to4, NAT64). Teredo (2001::/32) is
    not public to begin with, so it is refused as it is."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _name(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _resolve(host: str, port: int) -> list[tuple[Any, ...]]:
    """getaddrinfo's answers for a TCP connection (the resolver reads odd spellings); an
    OSError when there are none, as connecting to the name would raise."""
    try:
        return socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (UnicodeError, ValueError) as exc:  # a name IDNA cannot encode, a NUL in it
        raise OSError(f"cannot resolve {host!r}: {exc}") from None


def _address(info: tuple[Any, ...]) -> IPAddress:
    return ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])


def _refused(host: str, infos: Iterable[tuple[Any, ...]], allowed: AllowList) -> list[tuple[IPAddress, str]]:
    """The resolved addresses the allow-list does not cover and that are not public."""
    found = []
    for info in infos:
        address = _address(info)
        kind = internal_kind(address)
        if kind is not None and not allowed.allows_address(address):
            found.append((address, kind))
    return found


# --------------------------------------------------------------------------- at save


def host_of(target: str) -> str:
    """The host of a URL (`https://h:1/x` -> `h`), or the target itself (an SMTP host)."""
    if "://" in target:
        try:
            return urlsplit(target.strip()).hostname or ""
        except ValueError:
            return ""
    return _name(target)


def refusal(target: str) -> str | None:
    """Why a config may not point at `target` (a URL or a host), for the marketer: None when
    it may, or when the host does not resolve now (the connect-time check still applies)."""
    host = host_of(target)
    if not host:
        return None
    allowed = allow_list()
    if allowed.allows_name(host):
        return None
    if _name(host) in METADATA_NAMES:
        return f"points at a cloud metadata service ({host}); ask your operator to allow it"
    try:
        refused = _refused(host, _resolve(host, 0), allowed)
    except OSError:
        return None
    if not refused:
        return None
    return f"points at an internal address ({_shown(host, refused[0][0])}); ask your operator to allow it"


def _shown(host: str, address: IPAddress) -> str:
    """`127.0.0.1`, or `localhost is 127.0.0.1` when the host is a name or an odd spelling."""
    try:
        if ipaddress.ip_address(_name(host)) == address:
            return _name(host)
    except ValueError:
        pass
    return f"{host} is {address}"


# --------------------------------------------------------------------------- at connect


def checked_addresses(host: str, port: int) -> list[str]:
    """The addresses to connect to for `host`, each judged: OutboundRefused when any is
    internal and not allowed (or the name is a metadata service's); OSError when the name
    does not resolve, as a plain connection would raise."""
    allowed = allow_list()
    infos = _resolve(host, port)
    if not allowed.allows_name(host):
        if _name(host) in METADATA_NAMES:
            raise OutboundRefused(f"refused to connect to {host}: a cloud metadata service; "
                                  f"an operator may allow it in {ALLOW_SETTING}")
        if refused := _refused(host, infos, allowed):
            address, kind = refused[0]
            raise OutboundRefused(f"refused to connect to {host}: {address} is an internal address ({kind}); "
                                  f"an operator may allow it in {ALLOW_SETTING}")
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def create_connection(address: tuple[str, int], timeout: Any, source_address: Any = None) -> socket.socket:
    """socket.create_connection, to checked addresses only (tried in the resolver's order)."""
    host, port = address
    last: OSError | None = None
    for checked in checked_addresses(host, port):
        try:
            return socket.create_connection((checked, port), timeout, source_address)
        except OSError as exc:
            last = exc
    raise last or OSError(f"no address to connect to for {host}")


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's synchronous network backend, connecting to checked addresses only."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        try:
            addresses = checked_addresses(host, port)
        except OSError as exc:  # does not resolve: what httpcore's own backend raises then
            raise httpcore.ConnectError(str(exc)) from exc
        last: Exception | None = None
        for checked in addresses:
            try:
                return self._backend.connect_tcp(checked, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError(f"no address to connect to for {host}")

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise OutboundRefused("refused to connect to a unix socket")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's CAs, or SSL_CERT_FILE / SSL_CERT_DIR), made
    once and shared: loading the CA bundle costs ~35 ms, which every client paid before."""
    return httpx.create_ssl_context()


class HTTPTransport(httpx.HTTPTransport):
    """httpx's own transport (request and response handling, error mapping) over a
    connection pool whose network backend is the guard. (httpx takes no network backend,
    so the pool its constructor made is replaced: `_pool` is what all its methods use.)"""

    def __init__(self) -> None:
        super().__init__(verify=_tls())
        self._pool = httpcore.ConnectionPool(ssl_context=_tls(), network_backend=GuardedBackend(), **_LIMITS)


def http_client(**options: Any) -> httpx.Client:
    """An httpx.Client (timeout, auth, headers...) whose connections are guarded."""
    return httpx.Client(transport=HTTPTransport(), **options)


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = create_connection


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = create_connection


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(context=self._tls)

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_HTTPSConnection, req, context=self._tls)


def url_opener() -> urllib.request.OpenerDirector:
    """A urllib opener whose connections are guarded (and which ignores proxy variables)."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _HTTPHandler(), _HTTPSHandler())


class SMTP(smtplib.SMTP):
    """smtplib.SMTP whose connection is guarded (STARTTLS still checks the host's name)."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        if timeout is not None and not timeout:
            raise ValueError("Non-blocking socket (timeout=0) is not supported")
        return create_connection((host, port), timeout, self.source_address)
