"""When a contract agreement ends, from its `inForceDate` constraints (reference §3.1).

The right operand is an ISO-8601 instant or `contractAgreement+<n>(s|m|h|d)` (n may be negative),
counted from the agreement's signing date. `lteq`, `lt` and `eq` bound the end; `gteq`/`gt` only
bound the start. `and` takes the earliest end of its parts, `or`/`xone` the latest. The policy comes
JSON-LD compacted from the Management API: keys prefixed (`odrl:permission`), full IRIs or bare;
values an object or a list; operands `{"@id": ...}`, `{"@value": ...}` or plain strings.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from workflow_common.clock import as_utc

IN_FORCE_DATE = "https://w3id.org/edc/v0.0.1/ns/inForceDate"
ODRL = "http://www.w3.org/ns/odrl/2/"
EDC = "https://w3id.org/edc/v0.0.1/ns/"
_RELATIVE = re.compile(r"^contract[Aa]greement\+(-?[0-9]+)(s|m|h|d)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_END_OPERATORS = {"lteq", "lt", "eq"}
_KNOWN_OPERATORS = {"eq", "neq", "gt", "gteq", "lt", "lteq"}


class PolicyError(ValueError):
    """An inForceDate constraint EDC itself would not accept."""


def _name(value: Any) -> str:
    """`"odrl:lteq"`, `{"@id": "odrl:lteq"}`, a full IRI or `"lteq"` -> `"lteq"`."""
    if isinstance(value, dict):
        value = value.get("@id", value.get("@value", ""))
    text = str(value)
    for prefix in (ODRL, EDC, "odrl:", "edc:"):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def _get(node: dict[str, Any], term: str) -> Any:
    for key in (f"odrl:{term}", ODRL + term, term):
        if key in node:
            return node[key]
    return None


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _bound(right: Any, signed_at: datetime) -> datetime:
    if isinstance(right, dict):
        right = right.get("@value", right.get("@id"))
    text = str(right).strip()
    relative = _RELATIVE.match(text)
    if relative:
        amount, unit = int(relative.group(1)), _UNITS[relative.group(2)]
        return as_utc(signed_at) + timedelta(**{unit: amount})
    try:
        return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError as error:
        raise PolicyError(
            f"inForceDate operand {text!r} is neither an instant nor relative"
        ) from error


def _constraint_end(node: Any, signed_at: datetime) -> datetime | None:
    """The latest instant the constraint allows; None when it sets no end."""
    if not isinstance(node, dict):
        return None
    for logical, combine in (("and", min), ("or", max), ("xone", max)):
        parts = _items(_get(node, logical))
        if parts:
            ends = [_constraint_end(part, signed_at) for part in parts]
            if combine is min:
                bounded = [end for end in ends if end is not None]
                return min(bounded) if bounded else None
            return None if any(end is None for end in ends) else max(e for e in ends if e)
    if _name(_get(node, "leftOperand")) != "inForceDate":
        return None
    operator = _name(_get(node, "operator"))
    if operator not in _KNOWN_OPERATORS:
        raise PolicyError(f"inForceDate does not support the operator {operator!r}")
    bound = _bound(_get(node, "rightOperand"), signed_at)
    return bound if operator in _END_OPERATORS else None


def agreement_end(policy: dict[str, Any], signed_at: datetime) -> datetime | None:
    """The earliest end any `use` permission sets; None for an agreement without an end."""
    ends = []
    for permission in _items(_get(policy, "permission")):
        if not isinstance(permission, dict):
            continue
        for constraint in _items(_get(permission, "constraint")):
            end = _constraint_end(constraint, signed_at)
            if end is not None:
                ends.append(end)
    return min(ends) if ends else None
