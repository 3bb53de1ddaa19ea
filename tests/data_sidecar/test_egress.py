"""The egress decisions as pure functions: no address here is ever connected to."""

from __future__ import annotations

import ipaddress

import pytest

from data_sidecar.egress import (
    Address,
    EgressPolicy,
    EgressRefusedError,
    Resolver,
    is_global_unicast,
    origin_of,
)

NOT_GLOBAL = [
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "127.0.0.1",
    "127.8.9.10",
    "0.0.0.0",
    "100.64.0.1",  # CGNAT
    "100.100.100.200",  # a cloud's metadata, inside CGNAT
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.2.1",  # documentation
    "198.51.100.7",
    "203.0.113.9",
    "198.18.0.1",  # benchmarking
    "::1",
    "::",
    "fd00::1",  # ULA
    "fc00::1",
    "fe80::1",  # link-local
    "fec0::1",  # site-local (deprecated)
    "ff02::1",  # multicast
    "2001:db8::1",  # documentation
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
]
GLOBAL = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "2a00:1450:4001::1"]


def ip(text: str) -> Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize("address", NOT_GLOBAL)
def test_internal_and_special_addresses_are_not_global_unicast(address: str) -> None:
    assert not is_global_unicast(ip(address))
    assert not EgressPolicy().address_allowed("example.test", ip(address))


@pytest.mark.parametrize("address", GLOBAL)
def test_public_unicast_addresses_are_allowed(address: str) -> None:
    assert is_global_unicast(ip(address))
    assert EgressPolicy().address_allowed("example.test", ip(address))


def test_an_allow_listed_network_allows_its_addresses_only() -> None:
    policy = EgressPolicy.build(allow_cidrs=["10.20.0.0/16", "fd12::/16"])
    assert policy.address_allowed("data.internal", ip("10.20.3.4"))
    assert policy.address_allowed("data.internal", ip("::ffff:10.20.3.4"))
    assert policy.address_allowed("data.internal", ip("fd12::5"))
    assert not policy.address_allowed("data.internal", ip("10.21.0.1"))
    assert not policy.address_allowed("data.internal", ip("169.254.169.254"))


def test_an_allow_listed_host_may_resolve_to_any_address() -> None:
    policy = EgressPolicy.build(allow_hosts=["Data.Internal."])
    assert policy.address_allowed("data.internal", ip("10.0.0.5"))
    assert not policy.address_allowed("other.internal", ip("10.0.0.5"))


def table(entries: dict[str, list[str]]) -> Resolver:
    """A hosts-style resolver: names map to addresses, nothing is looked up."""

    def resolve(host: str, _port: int) -> list[Address]:
        return [ip(address) for address in entries.get(host, [])]

    return resolve


def test_a_name_is_refused_when_any_of_its_addresses_is_internal() -> None:
    resolver = table({"mixed.test": ["8.8.8.8", "10.0.0.1"], "public.test": ["8.8.4.4"]})
    policy = EgressPolicy()
    with pytest.raises(EgressRefusedError, match="not public"):
        policy.checked_addresses("mixed.test", 80, resolver)
    assert policy.checked_addresses("public.test", 80, resolver) == [ip("8.8.4.4")]
    with pytest.raises(EgressRefusedError, match="cannot be resolved"):
        policy.checked_addresses("nowhere.test", 80, resolver)


def test_a_literal_address_is_never_resolved() -> None:
    def refuse(host: str, port: int) -> list[Address]:
        raise AssertionError("a literal was resolved")

    assert EgressPolicy().checked_addresses("8.8.8.8", 443, refuse) == [ip("8.8.8.8")]
    with pytest.raises(EgressRefusedError):
        EgressPolicy().checked_addresses("[::ffff:127.0.0.1]", 443, refuse)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://files.test/x", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://files.test:70/", "only http and https"),
        ("http://10.0.0.1/x", "not a public address"),
        ("http://[::1]:8080/x", "not a public address"),
        ("http://[::ffff:7f00:1]/x", "not a public address"),
        ("HTTP://169.254.169.254/latest/meta-data/", "not a public address"),
        ("http://0.0.0.0:9000/", "not a public address"),
    ],
)
def test_urls_refused_without_resolving(url: str, reason: str) -> None:
    with pytest.raises(EgressRefusedError, match=reason):
        EgressPolicy().check_url(url)


def test_the_apis_own_origin_is_refused_in_any_spelling() -> None:
    policy = EgressPolicy.build(own_origins=["api.example.test:443"], allow_cidrs=["0.0.0.0/0"])
    for url in (
        "https://api.example.test/uploads/x",
        "HTTPS://API.EXAMPLE.TEST:443/jobs",
        "https://api.example.test./storage/k",
        "http://api.example.test:443/",
    ):
        with pytest.raises(EgressRefusedError, match="this API itself"):
            policy.check_url(url)
    assert policy.check_url("https://api.example.test:8443/") == ("api.example.test", 8443)
    assert policy.check_url("http://api.example.test/") == ("api.example.test", 80)


def test_origins_are_compared_parsed_with_default_ports() -> None:
    assert origin_of("HTTPS://Host.Test/a") == ("host.test", 443)
    assert origin_of("http://host.test:80/a") == ("host.test", 80)
    assert origin_of("http://[::1]:8080/") == ("::1", 8080)
    assert origin_of("ftp://host.test/") is None
    assert origin_of("not a url") is None


def test_rules_round_trip_through_the_manifest_form() -> None:
    policy = EgressPolicy.build(
        allow_hosts=["data.internal"],
        allow_cidrs=["10.0.0.0/8", "fd00::/8"],
        own_origins=["127.0.0.1:8080", "[::1]:8080"],
        max_redirects=3,
    )
    rules = policy.rules(deadline_seconds=60)
    assert EgressPolicy.from_rules(rules) == policy
    assert rules.deadline_seconds == 60


def test_malformed_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        EgressPolicy.build(allow_cidrs=["10.0.0.0/33"])
    with pytest.raises(ValueError):
        EgressPolicy.build(own_origins=["no-port"])
