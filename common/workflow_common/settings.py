"""Helpers both services' `Settings` use: reporting invalid settings without echoing values, and
the S3 settings that must come together."""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_settings import BaseSettings


def describe_invalid_settings(error: ValidationError, prefix: str) -> str:
    """One line per problem, naming the variable, never echoing its value (it may be a secret)."""
    lines = []
    for problem in error.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in problem["loc"])
        name = f"{prefix}{field.upper()}" if field else "settings"
        lines.append(f"{name}: {problem['msg']}")
    return "\n".join(lines)


def require_s3_settings(settings: BaseSettings, prefix: str) -> None:
    """With `storage = "s3"`, endpoint, keys and bucket must all be set."""
    if getattr(settings, "storage", None) != "s3":
        return
    needed = ("s3_endpoint", "s3_access_key", "s3_secret_key", "s3_bucket")
    missing = [name for name in needed if getattr(settings, name) is None]
    if missing:
        names = ", ".join(f"{prefix}{name.upper()}" for name in missing)
        raise ValueError(f"storage 's3' needs {names}")
