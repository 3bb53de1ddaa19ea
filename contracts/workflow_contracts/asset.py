"""The workflow asset definition: what a provider offers and how it runs.

An asset file (YAML or JSON) is validated against `WorkflowAsset`; the JSON schema the project owns
(`schemas/workflow-asset.schema.json`) is generated from it and kept in step by a test.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from workflow_contracts.env_names import (
    ENV_NAME_PATTERN,
    MAX_ENV_NAME_LENGTH,
    check_declared_name,
    check_declared_pattern,
)
from workflow_contracts.workspace import literal_env_name

IDENTIFIER_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,62}$"
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
DeclaredEnvName = Annotated[
    str,
    Field(pattern=ENV_NAME_PATTERN.pattern, max_length=MAX_ENV_NAME_LENGTH),
    AfterValidator(check_declared_name),
]
DeclaredEnvPattern = Annotated[
    str,
    Field(
        max_length=200,
        description="anchored: ^PREFIX_[class]{m,n}$, the class made of A-Z a-z 0-9 _",
    ),
    AfterValidator(check_declared_pattern),
]

# JSON-schema keywords a literal input may constrain itself with.
LITERAL_CONSTRAINT_KEYWORDS = frozenset(
    {
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "enum",
        "format",
    }
)


class InputKind(StrEnum):
    FILE = "file"
    ARCHIVE = "archive"
    LITERAL = "literal"
    ENV_FILE = "env-file"


class LiteralType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"


class OutputKind(StrEnum):
    FILE = "file"
    DIRECTORY = "directory"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EnvFileVariables(_Strict):
    """The variables an env-file input may set: exact names, or names matching strict patterns.

    Nothing else in the file reaches the worker's environment; runtime names are refused here.
    """

    names: list[DeclaredEnvName] = Field(default_factory=list, max_length=256)
    patterns: list[DeclaredEnvPattern] = Field(default_factory=list, max_length=32)

    def allows(self, name: str) -> bool:
        return name in self.names or any(re.fullmatch(p, name) for p in self.patterns)

    def describe(self) -> str:
        return ", ".join([*self.names, *self.patterns]) or "none"


class AssetInput(_Strict):
    id: Identifier
    title: str = ""
    description: str = ""
    kind: InputKind
    media_type: str | None = None
    required: bool = True
    max_size: int | None = Field(default=None, gt=0, description="bytes; files and archives")
    type: LiteralType | None = Field(default=None, description="literal inputs only")
    constraints: dict[str, Any] = Field(
        default_factory=dict, description="JSON-schema keywords for literal inputs"
    )
    default: Any = None
    variables: EnvFileVariables | None = Field(
        default=None,
        description="env-file inputs only: the variables it may set (none when absent)",
    )

    @model_validator(mode="after")
    def _kind_rules(self) -> AssetInput:
        if self.kind is InputKind.LITERAL:
            if self.type is None:
                raise ValueError(f"literal input {self.id!r} needs a 'type'")
            unknown = set(self.constraints) - LITERAL_CONSTRAINT_KEYWORDS
            if unknown:
                raise ValueError(f"input {self.id!r}: unsupported constraints {sorted(unknown)}")
        elif self.type is not None or self.constraints:
            raise ValueError(f"input {self.id!r}: 'type' and 'constraints' are for literal inputs")
        if self.variables is not None and self.kind is not InputKind.ENV_FILE:
            raise ValueError(f"input {self.id!r}: 'variables' is for env-file inputs")
        return self

    @property
    def declared_variables(self) -> EnvFileVariables:
        return self.variables or EnvFileVariables()

    def value_schema(self) -> dict[str, Any]:
        """The OGC/JSON schema of this input's value."""
        if self.kind is InputKind.LITERAL:
            assert self.type is not None
            schema: dict[str, Any] = {"type": self.type.value, **self.constraints}
            if self.default is not None:
                schema["default"] = self.default
            return schema
        media_type = self.media_type or _DEFAULT_MEDIA_TYPES[self.kind]
        return {"type": "string", "contentEncoding": "binary", "contentMediaType": media_type}


_DEFAULT_MEDIA_TYPES = {
    InputKind.FILE: "application/octet-stream",
    InputKind.ARCHIVE: "application/zip",
    InputKind.ENV_FILE: "text/plain",
}


class AssetOutput(_Strict):
    id: Identifier
    title: str = ""
    description: str = ""
    kind: OutputKind = OutputKind.FILE
    media_type: str | None = None

    @property
    def delivered_media_type(self) -> str:
        """Directories are delivered as zip archives."""
        if self.kind is OutputKind.DIRECTORY:
            return "application/zip"
        return self.media_type or "application/octet-stream"

    def value_schema(self) -> dict[str, Any]:
        return {
            "type": "string",
            "contentEncoding": "binary",
            "contentMediaType": self.delivered_media_type,
        }


class Resources(_Strict):
    cpu: str = "1"
    memory: str = "1Gi"
    gpu: int = Field(default=0, ge=0)


class ExecutionUnit(_Strict):
    """How the worker runs as a container (Kubernetes job runner)."""

    image: str
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    resources: Resources = Resources()
    timeout_seconds: int = Field(default=3600, gt=0)


class LocalNetwork(StrEnum):
    NONE = "none"
    EGRESS = "egress"


class LocalExecution(_Strict):
    """How the worker runs as a plain process (local job runner, in its sandbox)."""

    command: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    network: LocalNetwork = Field(
        default=LocalNetwork.NONE,
        description="none: no network at all (stage-in and push-out happen outside the"
        " sandbox); egress: the host's network, for workers that fetch data themselves",
    )


CONTRACT_VALIDITY_PATTERN = r"^[1-9][0-9]{0,5}(s|m|h|d)$"


class ContractTerms(_Strict):
    """What the provider's EDC offers: the contract policy published for the asset."""

    validity: str | None = Field(
        default="30d",
        pattern=CONTRACT_VALIDITY_PATTERN,
        description="how long an agreement lasts from its signing: <n>s|m|h|d (EDC's"
        " `inForceDate` `contractAgreement+<n><unit>`); null: no end",
    )


class WorkflowAsset(_Strict):
    id: Identifier
    title: str
    description: str = ""
    version: str = "1.0.0"
    inputs: list[AssetInput] = Field(default_factory=list)
    outputs: list[AssetOutput] = Field(default_factory=list)
    execution: ExecutionUnit
    local: LocalExecution | None = None
    contract: ContractTerms = ContractTerms()

    @field_validator("inputs", "outputs")
    @classmethod
    def _unique_ids(cls, items: list[Any]) -> list[Any]:
        ids = [item.id for item in items]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate ids {duplicates}")
        return items

    @model_validator(mode="after")
    def _inputs_cannot_override_the_provider(self) -> WorkflowAsset:
        """Every input's variable name is distinct and none is one the provider sets itself."""
        provider = set(self.execution.env) | set(self.local.env if self.local else {})
        literal_names: dict[str, str] = {}
        for item in self.inputs:
            if item.kind is InputKind.LITERAL:
                name = literal_env_name(item.id)
                if name in literal_names:
                    raise ValueError(
                        f"inputs {literal_names[name]!r} and {item.id!r} both become {name}"
                    )
                literal_names[name] = item.id
        for name in sorted(provider):
            owner = literal_names.get(name) or next(
                (i.id for i in self.inputs if i.declared_variables.allows(name)), None
            )
            if owner is not None:
                raise ValueError(f"input {owner!r} would set {name}, which the asset's env sets")
        return self

    def input(self, input_id: str) -> AssetInput | None:
        return next((i for i in self.inputs if i.id == input_id), None)

    def output(self, output_id: str) -> AssetOutput | None:
        return next((o for o in self.outputs if o.id == output_id), None)


class AssetFileError(ValueError):
    """An asset file could not be read or does not match the schema."""


def load_asset(path: Path) -> WorkflowAsset:
    """Read and validate one asset file (`.yaml`, `.yml` or `.json`)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        return WorkflowAsset.model_validate(data)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise AssetFileError(f"{path}: {error}") from error


ASSET_FILE_SUFFIXES: tuple[Literal[".yaml", ".yml", ".json"], ...] = (".yaml", ".yml", ".json")


def load_catalog(directory: Path) -> dict[str, WorkflowAsset]:
    """Every asset file of a directory, by asset id; duplicate ids are an error."""
    catalog: dict[str, WorkflowAsset] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix not in ASSET_FILE_SUFFIXES or not path.is_file():
            continue
        asset = load_asset(path)
        if asset.id in catalog:
            raise AssetFileError(f"{path}: asset id {asset.id!r} is defined twice")
        catalog[asset.id] = asset
    return catalog


def asset_json_schema() -> dict[str, Any]:
    schema = WorkflowAsset.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://workflow-middle-layer.example/schemas/workflow-asset.schema.json"
    return schema
