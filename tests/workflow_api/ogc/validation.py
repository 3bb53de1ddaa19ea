"""Check JSON documents against the vendored OGC API - Processes Part 1 **1.0** schemas.

The YAML files in ``schemas/`` are byte-identical copies of
``core/openapi/schemas/*.yaml`` from ``opengeospatial/ogcapi-processes`` at commit
``7a6bad0`` (see ``README.md``). They are OpenAPI 3.0 Schema Objects, which means:

* JSON-Schema **Draft 4** semantics (``exclusiveMinimum: true`` is a boolean, as in
  ``schema.yaml``), so the validator is built on :class:`jsonschema.Draft4Validator`;
* ``nullable: true`` lets ``null`` through a ``type`` check (OpenAPI 3.0.3 §4.7.24);
* ``$ref`` values are file names relative to the referring file (``$ref: "link.yaml"``).
  A :class:`referencing.Registry` keyed by file name resolves them;
* ``format`` is an annotation only (``uri``, ``date-time``, ``byte``...): not asserted.

``oneOf`` is checked as ``anyOf`` unless ``strict_one_of=True``. The 1.0 schemas have
branches that overlap, so a strict ``oneOf`` rejects valid documents, including the
spec's own examples:

* ``inputValueNoObject``: every string is both ``type: string`` and ``binaryInputValue``
  (also a string), and every integer is both ``number`` and ``integer``;
* ``execute.inputs``: any array matches both ``inlineOrRefData`` (which allows
  ``type: array``) and the "array of ``inlineOrRefData``" branch;
* ``schema.yaml``: ``{"$ref": ...}`` in ``allOf``/``items``/... is both ``schema.yaml``
  (whose first branch is ``reference.yaml``) and ``reference.yaml``;
* ``additionalParameter.value`` items: integers are both ``number`` and ``integer``.

Usage::

    from tests.workflow_api.ogc.validation import validate_ogc

    validate_ogc(response.json(), "statusInfo")  # raises jsonschema.ValidationError
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator, ValidationError, validators
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4

__all__ = [
    "EXAMPLES_DIR",
    "SCHEMAS_DIR",
    "SCHEMA_NAMES",
    "load_example",
    "ogc_validator",
    "validate_ogc",
]

HERE = Path(__file__).resolve().parent
SCHEMAS_DIR = HERE / "schemas"
EXAMPLES_DIR = HERE / "examples"

#: Every vendored schema, by file stem: "statusInfo", "jobList", "process", ...
SCHEMA_NAMES: tuple[str, ...] = tuple(sorted(p.stem for p in SCHEMAS_DIR.glob("*.yaml")))

_MAX_MESSAGE = 400  # characters of one error message (they embed the failing instance)
_MAX_OTHER_ERRORS = 5

_draft4_type = Draft4Validator.VALIDATORS["type"]
_draft4_any_of = Draft4Validator.VALIDATORS["anyOf"]


def _type_with_nullable(
    validator: Any, types: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """``type`` that lets ``null`` through when the same schema says ``nullable: true``."""
    if instance is None and schema.get("nullable") is True:
        return
    yield from _draft4_type(validator, types, instance, schema)


def _one_of_as_any_of(
    validator: Any, one_of: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """``oneOf`` checked as ``anyOf``: see the module docstring for why."""
    yield from _draft4_any_of(validator, one_of, instance, schema)


_StrictValidator = validators.extend(Draft4Validator, {"type": _type_with_nullable})
_LenientValidator = validators.extend(_StrictValidator, {"oneOf": _one_of_as_any_of})


def _schema_file(schema_name: str) -> str:
    name = schema_name.removesuffix(".yaml")
    if name not in SCHEMA_NAMES:
        raise ValueError(
            f"unknown OGC schema {schema_name!r}; available: {', '.join(SCHEMA_NAMES)}"
        )
    return f"{name}.yaml"


@functools.cache
def _load_yaml(file_name: str) -> Any:
    with (SCHEMAS_DIR / file_name).open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@functools.cache
def _registry() -> Registry[Any]:
    """All vendored files, keyed by file name ("link.yaml"), as Draft 4 resources."""
    resources = [
        (f"{name}.yaml", DRAFT4.create_resource(_load_yaml(f"{name}.yaml")))
        for name in SCHEMA_NAMES
    ]
    return Registry().with_resources(resources).crawl()


@functools.cache
def ogc_validator(schema_name: str, *, strict_one_of: bool = False) -> Validator:
    """A cached validator for one schema (``"statusInfo"`` or ``"statusInfo.yaml"``).

    The root is ``{"$ref": "<name>.yaml"}`` without a base URI, so the relative refs
    inside each file resolve to the other file names in the registry.
    """
    cls = _StrictValidator if strict_one_of else _LenientValidator
    validator: Validator = cls({"$ref": _schema_file(schema_name)}, registry=_registry())
    return validator


def _short(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


def validate_ogc(instance: object, schema_name: str, *, strict_one_of: bool = False) -> None:
    """Raise :class:`jsonschema.ValidationError` unless ``instance`` matches ``schema_name``.

    The error is the most relevant one (:func:`jsonschema.exceptions.best_match`). Its
    message names the schema, the JSON path of the failing value, the failing keyword,
    and how many other errors there were, with the first few of them.
    """
    validator = ogc_validator(schema_name, strict_one_of=strict_one_of)
    errors = list(validator.iter_errors(instance))
    if not errors:
        return
    best = best_match(errors)
    assert best is not None
    others = [e for e in errors if e is not best]
    message = (
        f"not a valid OGC API - Processes 1.0 {schema_name!r}: at {best.json_path}: "
        f"{_short(best.message)} (keyword {best.validator!r}, schema path "
        f"{'/'.join(str(p) for p in best.absolute_schema_path)})"
    )
    if others:
        listed = "; ".join(
            f"at {e.json_path}: {_short(e.message)}" for e in others[:_MAX_OTHER_ERRORS]
        )
        more = len(others) - _MAX_OTHER_ERRORS
        message += f"; {len(others)} other error(s): {listed}" + (
            f"; and {more} more" if more > 0 else ""
        )
    error = ValidationError.create_from(best)
    error.message = message
    raise error


def load_example(file_name: str) -> Any:
    """A spec example from ``examples/`` (``"StatusInfo.json"``), parsed as JSON."""
    return json.loads((EXAMPLES_DIR / file_name).read_text(encoding="utf-8"))
