"""Finding a built EDC runtime (with this project's extensions).

A runtime is a `lib/` directory of jars: `$WORKFLOW_EDC_RUNTIMES/<version>/lib` (CI sets it to what
`.ci/build-edc.sh` printed), the script's default cache, or the one Maven leaves in
`edc-config/runtimes/<version>/target/lib` (see edc-config/README.md).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[3]
EDC_CONFIG = REPOSITORY / "edc-config"


def edc_runtime_lib(version: str) -> Path | None:
    """The runtime's jar directory, or None when it has not been built."""
    candidates = []
    if root := os.environ.get("WORKFLOW_EDC_RUNTIMES"):
        candidates.append(Path(root) / version / "lib")
    candidates.append(Path.home() / ".cache/workflow-middle-layer/edc/runtimes" / version / "lib")
    candidates.append(EDC_CONFIG / "runtimes" / version / "target" / "lib")
    # A runtime without this project's extensions cannot run the flows (edc-config/extensions).
    return next((lib for lib in candidates if any(lib.glob("workflow-edc-extensions-*.jar"))), None)


def require_edc_runtime(version: str) -> Path:
    """The runtime's lib directory; skips the test without it (fails with
    `WORKFLOW_TESTS_REQUIRE_EDC=1`, as in CI)."""
    import pytest  # noqa: PLC0415 - only tests call this

    lib = edc_runtime_lib(version)
    if lib is None or shutil.which("java") is None:
        message = f"EDC runtime {version} not built (bash .ci/build-edc.sh) or no java"
        if os.environ.get("WORKFLOW_TESTS_REQUIRE_EDC") == "1":
            pytest.fail(f"WORKFLOW_TESTS_REQUIRE_EDC=1 but {message}")
        pytest.skip(message)
    return lib
