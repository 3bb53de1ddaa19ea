"""The egress policy: which URLs may be fetched, or posted to, on a consumer's behalf.

Every URL a consumer hands us (http(s) inputs, env-file hrefs, subscriber callbacks) goes through
one `EgressPolicy`; signed storage URLs, which this system makes itself, do not.

- Only `http` and `https`; never the API's own origins (`own_origins`).
- The host is resolved once; every address it resolves to must be allowed, and the connection is
  made to one of those checked addresses (`egress_http` pins it), so DNS cannot rebind in between.
- An address is allowed when it is global unicast (the `ipaddress` properties used as an
  allow-list: loopback, link-local, private, CGNAT, ULA, multicast, unspecified, reserved and
  documentation ranges are not, nor IPv6 forms that embed such an IPv4 address), or when the
  provider allow-lists its network (`allow_cidrs`) or the host name itself (`allow_hosts`).
- Refusals are decided before any connection and say nothing about whether something listens
  there, so a refusal is no port scan.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import httpx

from data_sidecar.errors import SidecarError
from workflow_contracts.manifest import EgressRules

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the addresses the name stands for; tests inject a hosts-style table.
Resolver = Callable[[str, int], Sequence[Address]]
ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
ALLOW_HINT = "the provider can allow-list it"


class EgressRefusedError(SidecarError):
    """The egress policy refuses a URL or the addresses its host resolves to."""


def system_resolver(host: str, port: int) -> list[Address]:
    """The addresses `getaddrinfo` gives for a TCP connection to `host:port`, in its order."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise EgressRefusedError(f"{host} cannot be resolved") from error
    addresses: list[Address] = []
    for _family, _type, _protocol, _name, socket_address in answers:
        address = ipaddress.ip_address(str(socket_address[0]).partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def is_global_unicast(address: Address) -> bool:
    """True only for addresses routed on the public internet to one host."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_global_unicast(address.ipv4_mapped)
        embedded = [address.sixtofour, *(address.teredo or ())]
        if any(inner is not None and not is_global_unicast(inner) for inner in embedded):
            return False
        if address.is_site_local:
            return False
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address.is_loopback
        or address.is_link_local
        or address.is_private
    )


def normalise_host(host: str) -> str:
    """Lower case, no trailing dot, no IPv6 brackets: the form host names are compared in."""
    return host.strip().strip("[]").rstrip(".").lower()


def origin_of(url: str) -> tuple[str, int] | None:
    """(host, port) of an http(s) URL, the port defaulted by scheme; None for anything else."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return None
    scheme = parsed.scheme.lower()
    if scheme not in ALLOWED_SCHEMES or not parsed.host:
        return None
    return normalise_host(parsed.host), parsed.port or DEFAULT_PORTS[scheme]


def parse_origin(text: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` as written in `EgressRules.own_origins`."""
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{text!r} is not host:port")
    return normalise_host(host), int(port)


@dataclass(frozen=True)
class EgressPolicy:
    allow_hosts: frozenset[str] = frozenset()
    allow_cidrs: tuple[Network, ...] = ()
    own_origins: frozenset[tuple[str, int]] = frozenset()
    max_redirects: int = 5

    @classmethod
    def build(
        cls,
        *,
        allow_hosts: Iterable[str] = (),
        allow_cidrs: Iterable[str] = (),
        own_origins: Iterable[str] = (),
        max_redirects: int = 5,
    ) -> EgressPolicy:
        """From the settings' strings; ValueError for a malformed network or origin."""
        return cls(
            allow_hosts=frozenset(normalise_host(host) for host in allow_hosts),
            allow_cidrs=tuple(ipaddress.ip_network(cidr.strip()) for cidr in allow_cidrs),
            own_origins=frozenset(parse_origin(origin) for origin in own_origins),
            max_redirects=max_redirects,
        )

    @classmethod
    def from_rules(cls, rules: EgressRules) -> EgressPolicy:
        return cls.build(
            allow_hosts=rules.allow_hosts,
            allow_cidrs=rules.allow_cidrs,
            own_origins=rules.own_origins,
            max_redirects=rules.max_redirects,
        )

    def rules(self, deadline_seconds: float) -> EgressRules:
        """The wire form a job's manifest carries to its data-sidecar."""
        return EgressRules(
            allow_hosts=sorted(self.allow_hosts),
            allow_cidrs=[str(network) for network in self.allow_cidrs],
            own_origins=[
                f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                for host, port in sorted(self.own_origins)
            ],
            max_redirects=self.max_redirects,
            deadline_seconds=deadline_seconds,
        )

    def check_url(self, url: str) -> tuple[str, int]:
        """(host, port) of a URL this policy lets us try; decided without resolving anything."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as error:
            raise EgressRefusedError("the URL cannot be parsed") from error
        scheme = parsed.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise EgressRefusedError(f"only http and https URLs are fetched, not {scheme!r}")
        if not parsed.host:
            raise EgressRefusedError("the URL has no host")
        host = normalise_host(parsed.host)
        port = parsed.port or DEFAULT_PORTS[scheme]
        if (host, port) in self.own_origins and host not in self.allow_hosts:
            raise EgressRefusedError(f"{host}:{port} is this API itself")
        literal = _literal_address(host)
        if literal is not None and not self.address_allowed(host, literal):
            raise EgressRefusedError(f"{host} is not a public address; {ALLOW_HINT}")
        return host, port

    def address_allowed(self, host: str, address: Address) -> bool:
        """May a connection for `host` go to `address`?"""
        if normalise_host(host) in self.allow_hosts:
            return True
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        if any(candidate in network for candidate in candidates for network in self.allow_cidrs):
            return True
        return is_global_unicast(address)

    def checked_addresses(self, host: str, port: int, resolver: Resolver) -> list[Address]:
        """The addresses to connect to for `host:port`: resolved once, every one of them allowed
        (one refused address refuses the name: a mixed answer is how rebinding starts)."""
        host = normalise_host(host)
        literal = _literal_address(host)
        addresses = [literal] if literal is not None else list(resolver(host, port))
        if not addresses:
            raise EgressRefusedError(f"{host} cannot be resolved")
        if not all(self.address_allowed(host, address) for address in addresses):
            raise EgressRefusedError(
                f"{host} resolves to an address that is not public; {ALLOW_HINT}"
            )
        return addresses


def _literal_address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None
