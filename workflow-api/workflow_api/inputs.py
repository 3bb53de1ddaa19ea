"""Execute requests checked against the asset and turned into a `Launch`, persisted with the job.

Every problem is an `InvalidInputError` naming the input: missing, unknown, wrong type, too large,
an unknown upload, an href that is neither an upload of this API nor an http(s) URL, or one the
egress policy refuses outright (a scheme, this API's origin, an address that is not public), text no
environment can carry (NUL, lone surrogates), an env-file variable the asset does not declare.

Env-files are checked here when they are inline or uploads; an env-file given as an http(s) href
is fetched when the job starts (`execution.env_files`), never inside the request, and checked
then by the same `env_file_variables`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import jsonschema
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from data_sidecar.egress import EgressPolicy, EgressRefusedError, origin_of
from workflow_api.db import Upload
from workflow_api.errors import BadRequestError, InvalidInputError
from workflow_contracts import environment
from workflow_contracts.asset import AssetInput, InputKind, WorkflowAsset
from workflow_contracts.environment import UndeclaredVariableError
from workflow_contracts.text import text_problem
from workflow_contracts.workspace import EnvFileError, parse_env_file


class Subscriber(BaseModel):
    model_config = ConfigDict(extra="forbid")

    successUri: AnyHttpUrl | None = None
    inProgressUri: AnyHttpUrl | None = None
    failedUri: AnyHttpUrl | None = None


class ExecuteRequest(BaseModel):
    """OGC `execute.yaml`; outputs are always delivered by reference."""

    model_config = ConfigDict(extra="allow")

    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] | None = None
    response: str | None = None
    subscriber: Subscriber | None = None


class FileSource(BaseModel):
    """Where a file-like input comes from: an upload, an http(s) URL or inline text."""

    id: str
    kind: InputKind
    upload_id: str | None = None
    url: str | None = None
    inline_text: str | None = None
    size: int | None = None
    sha256: str | None = None
    max_size: int

    @property
    def fetched_at_launch(self) -> bool:
        """An env-file behind an http(s) URL: read and checked when the job starts."""
        return self.kind is InputKind.ENV_FILE and self.url is not None


class Launch(BaseModel):
    files: list[FileSource] = Field(default_factory=list)
    literals: dict[str, Any] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)


# (upload id) -> Upload | None, and (source, size limit) -> text, supplied by the caller.
FindUpload = Callable[[str], Upload | None]
ReadText = Callable[[FileSource, int], str]


class InputResolver:
    def __init__(
        self,
        *,
        base_url: str,
        max_upload_size: int,
        max_env_file_size: int,
        find_upload: FindUpload,
        read_text: ReadText,
        egress: EgressPolicy,
    ) -> None:
        self._base_url = base_url
        self._origin = origin_of(base_url)
        self._base_path = urlsplit(base_url).path.rstrip("/")
        self._egress = egress
        self._max_upload_size = max_upload_size
        self._max_env_file_size = max_env_file_size
        self._find_upload = find_upload
        self._read_text = read_text

    def resolve(self, asset: WorkflowAsset, given: dict[str, Any]) -> Launch:
        unknown = sorted(set(given) - {item.id for item in asset.inputs})
        if unknown:
            known = ", ".join(item.id for item in asset.inputs) or "none"
            raise InvalidInputError(
                unknown[0], f"is not an input of {asset.id!r} (inputs: {known})"
            )
        launch = Launch()
        for item in asset.inputs:
            if item.id not in given:
                if item.default is not None:
                    launch.literals[item.id] = item.default
                elif item.required:
                    raise InvalidInputError(item.id, "is required")
                continue
            value = _single(item, given[item.id])
            if item.kind is InputKind.LITERAL:
                launch.literals[item.id] = _literal(item, value)
            else:
                source = self._file_source(item, value)
                if item.kind is InputKind.ENV_FILE and not source.fetched_at_launch:
                    launch.env.update(self._env_variables(item, source))
                launch.files.append(source)
        return launch

    def check_subscriber(self, subscriber: Subscriber | None) -> None:
        """Refuse callback URIs the egress policy refuses without resolving (400, not later)."""
        for name, uri in (subscriber.model_dump() if subscriber else {}).items():
            if uri is None:
                continue
            try:
                self._egress.check_url(str(uri))
            except EgressRefusedError as error:
                raise BadRequestError(f"subscriber {name} refused: {error}") from error

    def _file_source(self, item: AssetInput, value: Any) -> FileSource:
        limit = min(item.max_size or self._max_upload_size, self._max_upload_size)
        if item.kind is InputKind.ENV_FILE:
            limit = min(limit, self._max_env_file_size)
        if isinstance(value, dict) and "href" in value:
            return self._reference(item, str(value["href"]), limit)
        if item.kind is InputKind.ENV_FILE:
            text = value.get("value") if isinstance(value, dict) else value
            if not isinstance(text, str):
                raise InvalidInputError(item.id, "expects env-file text or {'href': ...}")
            problem = text_problem(text)
            if problem is not None:
                raise InvalidInputError(item.id, f"the env-file {problem}")
            if len(text.encode()) > limit:
                raise InvalidInputError(item.id, f"is larger than its limit of {limit} bytes")
            return FileSource(id=item.id, kind=item.kind, inline_text=text, max_size=limit)
        raise InvalidInputError(
            item.id, "expects a reference {'href': ...}; upload the file with POST /uploads"
        )

    def _reference(self, item: AssetInput, href: str, limit: int) -> FileSource:
        problem = text_problem(href)
        if problem is not None:
            raise InvalidInputError(item.id, f"the href {problem}")
        upload_id = self._upload_id(href)
        if upload_id is not None:
            upload = self._find_upload(upload_id)
            if upload is None:
                raise InvalidInputError(item.id, f"no upload {upload_id!r} exists")
            if upload.size > limit:
                raise InvalidInputError(
                    item.id, f"upload is {upload.size} bytes, more than its limit of {limit} bytes"
                )
            return FileSource(
                id=item.id,
                kind=item.kind,
                upload_id=upload.id,
                size=upload.size,
                sha256=upload.sha256,
                max_size=limit,
            )
        origin = origin_of(href)
        if origin is None:
            raise InvalidInputError(
                item.id, "href must be an upload of this API (/uploads/<id>) or an http(s) URL"
            )
        if origin == self._origin:
            raise InvalidInputError(item.id, "href points into this API but not at an upload")
        try:
            self._egress.check_url(href)
        except EgressRefusedError as error:
            raise InvalidInputError(item.id, f"href refused: {error}") from error
        return FileSource(id=item.id, kind=item.kind, url=href, max_size=limit)

    def _upload_id(self, href: str) -> str | None:
        """The id in `/uploads/<id>` or `<this API's URL>/uploads/<id>` (compared parsed: scheme
        and host in any case, the default port written or not)."""
        relative = href.startswith("/") and not href.startswith("//")
        path = urlsplit(href).path if relative else None
        if path is None and origin_of(href) == self._origin:
            path = urlsplit(href).path.removeprefix(self._base_path)
        prefix = "/uploads/"
        if path is None or not path.startswith(prefix):
            return None
        return path[len(prefix) :].strip("/") or None

    def _env_variables(self, item: AssetInput, source: FileSource) -> dict[str, str]:
        text = source.inline_text
        if text is None:
            text = self._read_text(source, source.max_size)
        return env_file_variables(item, text)


def env_file_variables(item: AssetInput, text: str) -> dict[str, str]:
    """The variables of an env-file given for `item`, parsed and held to what the asset declares:
    the one check for every kind of env-file source (inline, upload, or fetched at launch)."""
    try:
        variables = parse_env_file(text)
    except EnvFileError as error:
        raise InvalidInputError(item.id, f"is not a valid env-file: {error}") from error
    try:
        return environment.env_file_variables(item, variables)
    except UndeclaredVariableError as error:
        raise InvalidInputError(item.id, str(error)) from error


def _single(item: AssetInput, value: Any) -> Any:
    if isinstance(value, list):
        if len(value) != 1:
            raise InvalidInputError(item.id, "takes exactly one value")
        return value[0]
    return value


def _literal(item: AssetInput, value: Any) -> Any:
    if isinstance(value, dict):
        if "href" in value:
            raise InvalidInputError(item.id, "is a literal; give a value, not a reference")
        if "value" not in value:
            raise InvalidInputError(item.id, "expects a value or {'value': ...}")
        value = value["value"]
    schema = {key: v for key, v in item.value_schema().items() if key != "default"}
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as error:
        raise InvalidInputError(item.id, f"{error.message}") from error
    problem = text_problem(value) if isinstance(value, str) else None
    if problem is not None:
        raise InvalidInputError(item.id, f"the value {problem}")
    return value
