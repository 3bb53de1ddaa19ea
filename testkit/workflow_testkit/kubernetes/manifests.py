"""Offline checks of generated Kubernetes manifests, shared by the builders' tests.

`validate` holds a document against the official schema of a Kubernetes version, strictly (unknown
fields fail), with `kubernetes-validate`. Schemas check structure only; the rest (names, label
values, quantities, selectors) is checked by the helpers below.
"""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
from kubernetes.client import ApiClient
from kubernetes.utils import parse_quantity

OLDEST_VERSION = "1.28.0"
NEWEST_VERSION = kubernetes_validate.latest_version()  # 1.37.0 with kubernetes-validate 1.37
VERSIONS = (OLDEST_VERSION, NEWEST_VERSION)
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


def as_dict(obj: object) -> dict[str, Any]:
    """A typed `kubernetes.client` object as the API would receive it (camelCase keys)."""
    document: dict[str, Any] = ApiClient().sanitize_for_serialization(obj)
    return document


def validate(document: dict[str, Any], version: str) -> None:
    """Raise `kubernetes_validate.ValidationError` unless `document` fits the strict schema."""
    kubernetes_validate.validate(document, version, strict=True)


def check_dns_label(name: str) -> None:
    assert len(name) <= 63 and DNS_LABEL.fullmatch(name), f"{name!r} is not a DNS label"


def check_labels(labels: dict[str, str]) -> None:
    """Label keys (`[prefix/]name`) and values as the API server would check them."""
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if prefix:
            assert len(prefix) <= 253 and DNS_SUBDOMAIN.fullmatch(prefix), key
        assert len(name) <= 63 and LABEL_NAME.fullmatch(name), key
        assert len(value) <= 63 and LABEL_VALUE.fullmatch(value), (key, value)


def check_quantity(value: object) -> None:
    assert isinstance(value, str), f"{value!r}: quantities are strings"
    parse_quantity(value)  # raises ValueError for anything Kubernetes would refuse
