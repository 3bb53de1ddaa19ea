"""Which variable names an asset may let an env-file set: exact names and strict patterns.

A worker's environment is an allow-list the asset declares (see `environment.py`). This module
keeps the provider from declaring, by mistake, a name that steers the runtime instead of the
worker: the dynamic loader (`LD_*`), interpreters (`PYTHON*`, `NODE_OPTIONS`, `PERL5OPT`, ...),
shells (`BASH_ENV`, `ENV`, `IFS`, ...), proxies and TLS trust, locale and the workspace contract
(`WORKFLOW_*`, `INPUT_*`). Names are compared case-insensitively, because some programs read
the lower-case spelling too (`http_proxy`).

A pattern must have the form `^PREFIX_[class]{m,n}$`: a literal upper-case prefix ending in `_`,
then one character class made of `A-Z`, `a-z`, `0-9` and `_`, repeated 1 to 64 times. That shape
makes "could it match a reserved name?" decidable: it is refused when its prefix and a reserved
prefix are one a prefix of the other, or when it matches a reserved name.
"""

from __future__ import annotations

import re

ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_ENV_NAME_LENGTH = 128

RESERVED_ENV_NAMES = frozenset(
    {
        # process and shell
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "TERM", "TERMINFO",
        "TMPDIR", "TMP", "TEMP", "IFS", "ENV", "BASH_ENV", "CDPATH", "GLOBIGNORE", "PS1", "PS2",
        "PS4", "PROMPT_COMMAND", "SHELLOPTS", "BASHOPTS", "HISTFILE", "MAIL", "MAILPATH",
        # C library, locale, resolver
        "LANG", "LANGUAGE", "TZ", "TZDIR", "NLSPATH", "LOCPATH", "GCONV_PATH", "HOSTALIASES",
        "RES_OPTIONS", "LOCALDOMAIN", "GETCONF_DIR",
        # network and TLS trust
        "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "FTP_PROXY", "NO_PROXY", "SOCKS_PROXY",
        "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
        # other interpreters' hooks
        "CLASSPATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "PERLLIB",
        "PERL5LIB", "PERL5OPT", "RUBYLIB", "RUBYOPT", "GEM_PATH", "GEM_HOME", "VIRTUAL_ENV",
        "EDITOR", "VISUAL", "PAGER", "BROWSER",
    }
)  # fmt: skip
RESERVED_ENV_PREFIXES = (
    "WORKFLOW_", "INPUT_", "DATA_SIDECAR_", "LD_", "DYLD_", "GLIBC_", "MALLOC_", "LC_",
    "PYTHON", "PIP_", "UV_", "CONDA", "NODE_", "NPM_", "PERL", "RUBY", "JAVA_", "BASH_",
    "SSL_", "OPENSSL", "GIT_", "XDG_", "KUBERNETES_", "AWS_", "MINIO_", "S3_", "GOOGLE_",
    "AZURE_", "SSH_", "GNUPG", "GPG_", "DBUS_", "SYSTEMD_", "OMP_", "MKL_", "CUDA_", "NVIDIA_",
)  # fmt: skip

_PATTERN_SHAPE = re.compile(
    r"^\^(?P<prefix>[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*_)"
    r"\[(?P<charset>(?:A-Z|a-z|0-9|_)+)\]"
    r"\{(?P<low>[0-9]{1,2})(?:,(?P<high>[0-9]{1,2}))?\}\$$"
)
MAX_PATTERN_REPEAT = 64


def reserved_reason(name: str) -> str | None:
    """Why `name` may not come from an input, or None when it may."""
    upper = name.upper()
    if upper in RESERVED_ENV_NAMES:
        return f"{name} steers the runtime, not the worker"
    prefix = next((p for p in RESERVED_ENV_PREFIXES if upper.startswith(p)), None)
    if prefix is not None:
        return f"{name} starts with {prefix}, which is reserved for the runtime"
    return None


def check_declared_name(name: str) -> str:
    """A name an asset may declare for an env-file input (ValueError otherwise)."""
    if len(name) > MAX_ENV_NAME_LENGTH or not ENV_NAME_PATTERN.fullmatch(name):
        raise ValueError(f"{name!r} is not a variable name")
    reason = reserved_reason(name)
    if reason is not None:
        raise ValueError(reason)
    return name


def check_declared_pattern(pattern: str) -> str:
    """A strict pattern an asset may declare (ValueError otherwise); see the module docstring."""
    shape = _PATTERN_SHAPE.fullmatch(pattern)
    if shape is None:
        raise ValueError(
            f"pattern {pattern!r} must look like ^PREFIX_[A-Z0-9_]{{1,32}}$ "
            "(anchored, an upper-case prefix ending in _, one class of A-Z a-z 0-9 _)"
        )
    low = int(shape["low"])
    high = int(shape["high"] or low)
    if not 1 <= low <= high <= MAX_PATTERN_REPEAT:
        raise ValueError(f"pattern {pattern!r}: repeat between 1 and {MAX_PATTERN_REPEAT}")
    prefix = shape["prefix"]
    for reserved in RESERVED_ENV_PREFIXES:
        if prefix.startswith(reserved) or reserved.startswith(prefix):
            raise ValueError(f"pattern {pattern!r} could match names reserved by {reserved}")
    compiled = re.compile(pattern, re.IGNORECASE)
    for name in sorted(RESERVED_ENV_NAMES):
        if compiled.fullmatch(name):
            raise ValueError(f"pattern {pattern!r} matches the reserved name {name}")
    return pattern
