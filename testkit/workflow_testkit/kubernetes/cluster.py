"""A real Kubernetes API for tests: a KWOK cluster (`kwokctl --runtime binary`) on loopback.

The control plane is real — etcd, kube-apiserver (authn, RBAC, admission, validation),
kube-controller-manager (Deployments, ReplicaSets, Jobs, GC, namespace deletion) and
kube-scheduler — built from the Go module proxy by `.ci/build-kubernetes.sh`. Only the nodes are
fake: the kwok controller plays the kubelet of the nodes `kwokctl scale node` adds, marks pods
Running/Ready and moves pods owned by a Job to Succeeded (its default "fast" pod stages), without
running any container. Other nodes are left alone (see `_KWOKCTL_CONFIG`).

Nothing is downloaded: every binary comes from `<cache_dir>/bin`. Every component listens on
127.0.0.1 on random ports, and kwokctl keeps its state in a private directory (`KWOK_WORKDIR`),
so neither `~/.kwok` nor `~/.kube/config` is touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

DEFAULT_KUBERNETES_VERSION = "1.34.4"
BINARIES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "etcd",
    "kwok",
    "kwokctl",
)
# The kwok controller manages only the nodes `kwokctl scale node` makes (they carry this
# annotation), not every node: a test may then register a node of its own and play its kubelet
# (`fake_kubelet.py`).
_KWOKCTL_CONFIG = """\
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  bindAddress: 127.0.0.1
componentsPatches:
- name: kwok-controller
  extraArgs:
  - key: manage-all-nodes
    value: "false"
    override: true
  - key: manage-nodes-with-annotation-selector
    value: kwok.x-k8s.io/node=fake
"""
_CREATE_TIMEOUT_SECONDS = 240
_READY_TIMEOUT_SECONDS = 120


class KubernetesUnavailableError(RuntimeError):
    """The binaries are missing or the cluster did not come up."""


def default_cache_dir() -> Path:
    """`<WORKFLOW_K8S_CACHE>/v<WORKFLOW_K8S_VERSION>`, as written by `.ci/build-kubernetes.sh`."""
    root = os.environ.get("WORKFLOW_K8S_CACHE") or str(
        Path.home() / ".cache" / "workflow-middle-layer" / "kubernetes"
    )
    version = os.environ.get("WORKFLOW_K8S_VERSION", DEFAULT_KUBERNETES_VERSION)
    return Path(root) / f"v{version.removeprefix('v')}"


def missing_binaries(cache_dir: Path) -> list[str]:
    """The binaries of `BINARIES` that are not executable files in `<cache_dir>/bin`."""
    bin_dir = cache_dir / "bin"
    return [name for name in BINARIES if not os.access(bin_dir / name, os.X_OK)]


@dataclass
class ClusterHandle:
    name: str
    kubeconfig_path: Path
    workdir: Path
    bin_dir: Path
    _env: dict[str, str] = field(repr=False, default_factory=dict)

    def api_client(self, token: str | None = None) -> ApiClient:
        """A new client: cluster admin (client certificate), or the given bearer token only."""
        from kubernetes import client, config  # noqa: PLC0415 - keep the import lazy

        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(self.kubeconfig_path), client_configuration=configuration
        )
        if token is not None:
            configuration.cert_file = None
            configuration.key_file = None
            configuration.api_key = {"authorization": f"Bearer {token}"}
        return client.ApiClient(configuration)

    def kwokctl(self, *arguments: str, timeout: float = 120) -> str:
        """Run `kwokctl <arguments> --name <cluster>` against this cluster; returns stdout."""
        return _run(
            [str(self.bin_dir / "kwokctl"), *arguments, "--name", self.name], self._env, timeout
        )

    def component_logs(self, lines: int = 40) -> str:
        """The last lines of every component's log, for failure messages."""
        logs_dir = self.workdir / "clusters" / self.name / "logs"
        parts = []
        for log_file in sorted(logs_dir.glob("*.log")):
            tail = log_file.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log_file.name}\n" + "\n".join(tail))
        return "\n".join(parts) or f"(no logs in {logs_dir})"


def _run(command: list[str], env: dict[str, str], timeout: float) -> str:
    try:
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise KubernetesUnavailableError(
            f"{' '.join(command)} timed out after {timeout}s"
        ) from error
    if result.returncode != 0:
        raise KubernetesUnavailableError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def _wait_until_ready(handle: ClusterHandle) -> None:
    """Until /readyz answers ok and the default ServiceAccount exists (controllers are up)."""
    from kubernetes import client  # noqa: PLC0415

    deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
    last_error: Exception | None = None
    with handle.api_client() as api:
        core = client.CoreV1Api(api)
        while time.monotonic() < deadline:
            try:
                response: Any = api.request(
                    "GET", f"{api.configuration.host}/readyz", _request_timeout=5
                )
                if response.data.decode().strip() == "ok":
                    core.read_namespaced_service_account("default", "default")
                    return
            except Exception as error:  # retried until the deadline
                last_error = error
            time.sleep(0.5)
    raise KubernetesUnavailableError(
        f"cluster {handle.name} not ready after {_READY_TIMEOUT_SECONDS}s: {last_error}\n"
        + handle.component_logs()
    )


@contextlib.contextmanager
def kwok_cluster(cache_dir: Path, name: str = "wf-test", nodes: int = 1) -> Iterator[ClusterHandle]:
    """Start a KWOK cluster from `<cache_dir>/bin`; yield it once the API answers; delete it."""
    missing = missing_binaries(cache_dir)
    if missing:
        raise KubernetesUnavailableError(
            f"missing in {cache_dir / 'bin'}: {', '.join(missing)} (run .ci/build-kubernetes.sh)"
        )
    bin_dir = cache_dir / "bin"
    workdir = Path(tempfile.mkdtemp(prefix="kwok-"))
    config_path = workdir / "kwokctl.yaml"
    config_path.write_text(_KWOKCTL_CONFIG)
    env = {
        **os.environ,
        "KWOK_WORKDIR": str(workdir),
        # kubectl/client-go write a discovery cache under ~/.kube: keep it in the workdir too.
        "HOME": str(workdir),
        # kwokctl shells out to kubectl for a few sub-commands; prefer ours, then the PATH.
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    handle = ClusterHandle(name, workdir / "kubeconfig.yaml", workdir, bin_dir, env)
    kwokctl = str(bin_dir / "kwokctl")
    try:
        _run(
            [
                kwokctl,
                "--config",
                str(config_path),
                "create",
                "cluster",
                "--name",
                name,
                "--runtime",
                "binary",
                "--kube-apiserver-binary",
                str(bin_dir / "kube-apiserver"),
                "--kube-controller-manager-binary",
                str(bin_dir / "kube-controller-manager"),
                "--kube-scheduler-binary",
                str(bin_dir / "kube-scheduler"),
                "--etcd-binary",
                str(bin_dir / "etcd"),
                "--kwok-controller-binary",
                str(bin_dir / "kwok"),
                "--kubeconfig",
                str(handle.kubeconfig_path),
                "--wait",
                "2m",
                "--timeout",
                f"{_CREATE_TIMEOUT_SECONDS}s",
            ],
            env,
            _CREATE_TIMEOUT_SECONDS + 30,
        )
        _wait_until_ready(handle)
        if nodes:
            handle.kwokctl("scale", "node", "--replicas", str(nodes))
        yield handle
    finally:
        with contextlib.suppress(KubernetesUnavailableError):
            _run([kwokctl, "delete", "cluster", "--name", name], env, 120)
        shutil.rmtree(workdir, ignore_errors=True)
