"""Pure parts of the provisioner: contract expiry, credential secrets, slugs, EDC wire bodies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from provisioner.edc import wire
from provisioner.edc.expiry import PolicyError, agreement_end
from provisioner.slugs import consumer_slug, prefixed_label
from provisioner.storage.credentials import CredentialSecrets

SIGNED = datetime(2026, 1, 1, tzinfo=UTC)


def constraint(operator: str, right: str, *, style: str = "compact") -> dict[str, Any]:
    if style == "compact":
        return {
            "odrl:leftOperand": {"@id": "edc:inForceDate"},
            "odrl:operator": {"@id": f"odrl:{operator}"},
            "odrl:rightOperand": right,
        }
    return {
        "leftOperand": "https://w3id.org/edc/v0.0.1/ns/inForceDate",
        "operator": f"http://www.w3.org/ns/odrl/2/{operator}",
        "rightOperand": {"@value": right},
    }


def policy(
    *constraints: dict[str, Any], logical: str = "and", as_list: bool = False
) -> dict[str, Any]:
    body: Any = (
        {"odrl:and": list(constraints)} if logical == "and" else {"odrl:or": list(constraints)}
    )
    if len(constraints) == 1:
        body = constraints[0]
    permission = {"odrl:action": {"@id": "odrl:use"}, "odrl:constraint": body}
    return {"@type": "odrl:Agreement", "odrl:permission": [permission] if as_list else permission}


@pytest.mark.parametrize(
    ("right", "expected"),
    [
        ("contractAgreement+30d", SIGNED + timedelta(days=30)),
        ("contractagreement+5s", SIGNED + timedelta(seconds=5)),
        ("contractAgreement+2h", SIGNED + timedelta(hours=2)),
        ("contractAgreement+90m", SIGNED + timedelta(minutes=90)),
        ("contractAgreement+-5m", SIGNED - timedelta(minutes=5)),
        ("2026-12-31T23:59:59Z", datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_relative_and_absolute_ends(right: str, expected: datetime) -> None:
    assert agreement_end(policy(constraint("lteq", right)), SIGNED) == expected


@pytest.mark.parametrize("operator", ["lteq", "lt", "eq"])
def test_end_operators(operator: str) -> None:
    end = agreement_end(policy(constraint(operator, "contractAgreement+1d")), SIGNED)
    assert end == SIGNED + timedelta(days=1)


def test_start_bounds_do_not_end_a_contract() -> None:
    assert agreement_end(policy(constraint("gteq", "contractAgreement+0s")), SIGNED) is None
    assert agreement_end({"odrl:permission": {"odrl:action": "use"}}, SIGNED) is None


def test_and_takes_the_earliest_end_and_or_the_latest() -> None:
    both = [
        constraint("gteq", "contractAgreement+0s"),
        constraint("lteq", "contractAgreement+30d"),
        constraint("lt", "contractAgreement+10d"),
    ]
    assert agreement_end(policy(*both), SIGNED) == SIGNED + timedelta(days=10)
    either = [
        constraint("lteq", "contractAgreement+1d"),
        constraint("lteq", "contractAgreement+3d"),
    ]
    assert agreement_end(policy(*either, logical="or"), SIGNED) == SIGNED + timedelta(days=3)


def test_full_iri_shapes_and_permission_lists_are_read() -> None:
    parsed = policy(constraint("lteq", "contractAgreement+7d", style="iri"), as_list=True)
    assert agreement_end(parsed, SIGNED) == SIGNED + timedelta(days=7)


@pytest.mark.parametrize(
    ("operator", "right", "message"),
    [
        ("isPartOf", "contractAgreement+1d", "operator"),
        ("lteq", "contractAgreement + 1d", "neither"),
        ("lteq", "contractAgreement+10ms", "neither"),
        ("lteq", "tomorrow", "neither"),
    ],
)
def test_constraints_edc_would_reject_are_refused(operator: str, right: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        agreement_end(policy(constraint(operator, right)), SIGNED)


def test_credential_secrets_are_bound_to_their_grant(tmp_path: Any) -> None:
    secrets = CredentialSecrets.load_or_create(tmp_path / "key")
    secret = secrets.issue("grant-1")
    _, _, mac = secret.rpartition(".")
    assert secrets.grant_id_of(secret) == "grant-1"
    assert len(mac) >= 43  # 256 bits, base64url
    assert secrets.grant_id_of(f"grant-2.{mac}") is None
    assert secrets.grant_id_of(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert secrets.grant_id_of("grant-1") is None
    assert CredentialSecrets.load_or_create(tmp_path / "key").grant_id_of(secret) == "grant-1"
    assert CredentialSecrets.load_or_create(tmp_path / "other").grant_id_of(secret) is None
    assert (tmp_path / "key").stat().st_mode & 0o777 == 0o600


def test_slugs_are_dns_safe_unique_and_stable() -> None:
    slug = consumer_slug("did:web:Example.org:Alice")
    assert slug.startswith("did-web-example-org-alice-")
    assert consumer_slug("did:web:Example.org:Alice") == slug
    assert consumer_slug("Alice") != consumer_slug("alice")
    assert consumer_slug("ünïcode!!!").startswith("c-") or consumer_slug("ünïcode!!!")[0].isalnum()
    long = consumer_slug("x" * 500)
    assert len(long) <= 48 and long[0].isalnum() and long[-1].isalnum()


def test_slugs_carry_at_least_64_bits_of_hash_in_every_derived_name() -> None:
    """8 hex digits (32 bits) collide after ~65,000 chosen ids, in well under a second."""
    slug = consumer_slug("did:web:Example.org:Alice")
    digest = slug.rsplit("-", 1)[1]
    assert len(digest) * 4 >= 64 and int(digest, 16) >= 0
    long_ids = [f"did:web:tenants.example.org:{'x' * 60}:{n}" for n in range(200)]
    for prefix in ("wf-", "workflow-data-", "a-very-long-bucket-name-stem-for-s3-"):
        names = {prefixed_label(prefix, consumer_slug(i)) for i in long_ids}
        assert len(names) == len(long_ids), prefix
        for consumer_id in long_ids[:3]:
            name = prefixed_label(prefix, consumer_slug(consumer_id))
            assert len(name) <= 63 and name.endswith(consumer_slug(consumer_id)[-20:])
    assert prefixed_label("wf-", "c-" + "a" * 8) == "wf-c-aaaaaaaa"  # slugs made before: kept


def test_callback_bodies_use_the_properties_wrapper_and_full_iris() -> None:
    address = wire.credentials_address("http://p/credentials", "secret")
    assert set(address) == {"properties"}
    assert address["properties"]["https://w3id.org/edc/v0.0.1/ns/type"] == "HttpData"
    assert address["properties"]["https://w3id.org/edc/v0.0.1/ns/authCode"] == "Bearer secret"
    body = wire.legacy_provision_callback(
        resource_definition_id="rd", asset_id="a", resource_name="r", address=address
    )
    assert body["edctype"] == "dataspaceconnector:provisioner-callback-request"
    assert body["apiKeyJwt"] and body["hasToken"] is False and "keyName" not in str(body)
    endpoint = wire.endpoint_address("http://api", "tok")["properties"]
    assert endpoint["https://w3id.org/edc/v0.0.1/ns/authorization"] == "tok"
    assert all(key.startswith("https://w3id.org/edc/v0.0.1/ns/") for key in endpoint)
    assert wire.dataplane_callback_url("http://dp/provisioning/", "f", "r", "provision") == (
        "http://dp/provisioning/f/r/provision"
    )
