"""Helpers both services' `Settings` use: reporting invalid settings without echoing values, and
the S3 settings that must come together."""

from __future__ import annotations

from pydantic import ValidationError

S3_REQUIRED = ("endpoint", "access_key", "secret_key", "bucket")


def describe_invalid_settings(error: ValidationError, prefix: str) -> str:
    """One line per problem, naming the variable, never echoing its value (it may be a secret).
    A nested field's location (`kubernetes`, `quota_gpu`) is its variable's name
    (`PROVISIONER_KUBERNETES_QUOTA_GPU`)."""
    lines = []
    for problem in error.errors(include_input=False, include_url=False):
        field = "_".join(str(part) for part in problem["loc"])
        name = f"{prefix}{field.upper()}" if field else "settings"
        lines.append(f"{name}: {problem['msg']}")
    return "\n".join(lines)


def require_s3_settings(settings: object, prefix: str, *, field_prefix: str = "") -> None:
    """For S3 storage: endpoint, keys and bucket (the fields `<field_prefix><name>`) must all be
    set; a ValueError names the missing variables, `<prefix><NAME>`."""
    missing = [name for name in S3_REQUIRED if getattr(settings, field_prefix + name) is None]
    if missing:
        names = ", ".join(f"{prefix}{name.upper()}" for name in missing)
        raise ValueError(f"storage 's3' needs {names}")
