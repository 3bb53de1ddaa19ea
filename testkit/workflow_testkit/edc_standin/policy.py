"""Contract policies as EDC stores them: permissions with `inForceDate` constraints.

Pure data plus builders; `wire` renders them as Jackson (legacy provision request) or compacted
JSON-LD (Management API).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

EDC_NAMESPACE = "https://w3id.org/edc/v0.0.1/ns/"
ODRL_NAMESPACE = "http://www.w3.org/ns/odrl/2/"
IN_FORCE_DATE = EDC_NAMESPACE + "inForceDate"

OdrlOperator = Literal["eq", "neq", "gt", "gteq", "lt", "lteq"]
TimeUnit = Literal["s", "m", "h", "d"]

#: ODRL operator -> `org.eclipse.edc.policy.model.Operator` enum name (Jackson form).
JAVA_OPERATORS: dict[str, str] = {
    "eq": "EQ",
    "neq": "NEQ",
    "gt": "GT",
    "gteq": "GEQ",
    "lt": "LT",
    "lteq": "LEQ",
}

_DURATION = re.compile(r"^(-?[0-9]+)(s|m|h|d)$")


@dataclass(frozen=True)
class AtomicConstraint:
    left_operand: str
    operator: OdrlOperator
    right_operand: str


@dataclass(frozen=True)
class AndConstraint:
    constraints: tuple[AtomicConstraint, ...]


Constraint = AtomicConstraint | AndConstraint


@dataclass(frozen=True)
class Permission:
    """A permission; `action` is the ODRL action name (EDC binds only `use` to its scopes)."""

    action: str = "use"
    constraints: tuple[Constraint, ...] = ()


@dataclass(frozen=True)
class Policy:
    permissions: tuple[Permission, ...] = ()


def contract_agreement_offset(amount: int, unit: TimeUnit) -> str:
    """`contractAgreement+<n><unit>`, the relative form `ContractExpiryCheckFunction` parses."""
    return f"contractAgreement+{amount}{unit}"


def instant(moment: datetime) -> str:
    """An ISO-8601 instant as `Instant.parse` reads it, e.g. `2026-12-31T23:59:59Z`."""
    if moment.tzinfo is None:
        raise ValueError("an instant needs a timezone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def in_force_date(operator: OdrlOperator, right_operand: str) -> AtomicConstraint:
    """One `inForceDate` constraint, e.g. `in_force_date("lteq", "contractAgreement+30d")`."""
    if operator not in JAVA_OPERATORS:
        raise ValueError(f"EDC's expiry check does not support operator {operator!r}")
    return AtomicConstraint(IN_FORCE_DATE, operator, right_operand)


def use_permission(
    *constraints: AtomicConstraint, combine: Literal["and", "list"] = "and"
) -> Policy:
    """A policy with one `use` permission.

    One constraint is always attached directly (`odrl:constraint` is then a single object);
    several are wrapped in one `odrl:and` (`combine="and"`, as EDC's fixtures do) or attached
    side by side (`combine="list"`).
    """
    if len(constraints) == 1:
        return Policy((Permission(constraints=(constraints[0],)),))
    if combine == "and" and constraints:
        return Policy((Permission(constraints=(AndConstraint(tuple(constraints)),)),))
    return Policy((Permission(constraints=tuple(constraints)),))


def valid_for(duration: str = "30d", *, operator: OdrlOperator = "lteq") -> Policy:
    """`and` of `gteq contractAgreement+0s` and `<operator> contractAgreement+<duration>`."""
    match = _DURATION.match(duration)
    if match is None:
        raise ValueError(f"duration must look like 5s, 10m, 2h or 30d, not {duration!r}")
    amount, unit = int(match.group(1)), match.group(2)
    return use_permission(
        in_force_date("gteq", contract_agreement_offset(0, "s")),
        in_force_date(operator, contract_agreement_offset(amount, unit)),  # type: ignore[arg-type]
    )


def valid_until(moment: datetime, *, operator: OdrlOperator = "lteq") -> Policy:
    """A single constraint `<operator> <ISO instant>`."""
    return use_permission(in_force_date(operator, instant(moment)))


def open_policy() -> Policy:
    """An agreement from an empty `Set` policy: no permissions at all."""
    return Policy()
