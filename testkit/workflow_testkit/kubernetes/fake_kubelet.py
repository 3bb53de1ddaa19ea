"""A kubelet for one node of the test cluster, in Python: pods' containers as local processes.

KWOK's nodes run no container, so job pods would never stage, work or push out. This kubelet
registers a node of its own (KWOK leaves nodes without its annotation alone), keeps its Lease
renewed and, for each pod bound to it, does what a kubelet does, through the real API server:

- volumes: an emptyDir is a fresh directory, a Secret volume its keys written as files (the pod
  waits until the Secret exists, as a real mount would); mount paths appearing in a container's
  env, working directory, command or arguments are rewritten to those directories, since there are
  no mount namespaces here;
- images: only the images in `images` can be "pulled"; any other one leaves the container waiting
  in `ErrImagePull`, then `ImagePullBackOff`, until the pod is deleted;
- containers: init containers in order; a native sidecar (`restartPolicy: Always`) is started and
  its exec startup probe run until it passes, before the next container; the main container runs
  with `secretKeyRef` variables resolved; when it has ended, sidecars get SIGTERM and the
  termination grace period; the memory limit is enforced by watching the process group's RSS
  (`OOMKilled`, exit 137, as a cgroup would);
- status: container states (running, terminated with exit code and reason, waiting), conditions
  and phase are patched into the pod, so the real Job controller judges the Job;
- deletion: SIGTERM, grace period, SIGKILL, then the final delete with grace 0;
- logs: an HTTPS endpoint (`/containerLogs/...`, the node's kubelet port) serves what each
  container wrote, so `pods/log` goes through the API server as on a real node.

What it does not do: isolation of any kind (no namespaces, cgroups, users, read-only root), probes
other than exec startup probes, restarts, image pulls.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import logging
import ssl
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from workflow_testkit.kubernetes.fake_pod import PodRunner

log = logging.getLogger(__name__)

NODE_LABEL = "workflow.test/kubelet"
TAINT_KEY = "workflow.test/fake-kubelet"
LEASE_SECONDS = 40


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-kubelet")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "kubelet.crt", directory / "kubelet.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class FakeKubelet:
    def __init__(self, api: client.ApiClient, images: dict[str, str], node: str = "py-kubelet"):
        self.api = api
        self.core = client.CoreV1Api(api)
        self.node = node
        self.images = images  # image -> a note; anything else cannot be pulled
        self.root = Path(tempfile.mkdtemp(prefix="fake-kubelet-"))
        self.pods: dict[str, PodRunner] = {}  # by uid
        self.seen: dict[str, list[str]] = {}  # namespace/name -> uids, for the tests
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._serve_logs()
        self._register()
        for target in (self._renew_lease, self._sync_pods):
            thread = threading.Thread(target=target, daemon=True, name=target.__name__)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for runner in list(self.pods.values()):
            runner.kill()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._server is not None:
            self._server.shutdown()
        with contextlib.suppress(ApiException):
            self.core.delete_node(self.node)

    def find(self, namespace: str, name: str) -> PodRunner | None:
        return next(
            (r for r in self.pods.values() if (r.namespace, r.name) == (namespace, name)), None
        )

    # --- node -----------------------------------------------------------------------------------

    def _register(self) -> None:
        assert self._server is not None
        node = client.V1Node(
            metadata=client.V1ObjectMeta(
                name=self.node,
                labels={
                    "kubernetes.io/hostname": self.node,
                    "kubernetes.io/os": "linux",
                    NODE_LABEL: "python",
                },
            ),
            spec=client.V1NodeSpec(
                taints=[client.V1Taint(key=TAINT_KEY, value="true", effect="NoSchedule")]
            ),
        )
        self.core.create_node(node)
        capacity = {"cpu": "16", "memory": "32Gi", "pods": "110", "nvidia.com/gpu": "2"}
        port = self._server.server_address[1]
        info = {
            key: "fake"
            for key in (
                "machineID",
                "systemUUID",
                "bootID",
                "kernelVersion",
                "osImage",
                "containerRuntimeVersion",
                "kubeletVersion",
                "kubeProxyVersion",
            )
        } | {"operatingSystem": "linux", "architecture": "amd64"}
        self._patch_node_status(
            {
                "capacity": capacity,
                "allocatable": capacity,
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                "nodeInfo": info,
                "conditions": self._conditions(),
            }
        )

    def _conditions(self) -> list[dict[str, str]]:
        now = _now().isoformat()
        healthy = {"MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False"}
        conditions = [
            {
                "type": kind,
                "status": value,
                "reason": "KubeletHasSufficientResources",
                "message": "fake",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
            for kind, value in healthy.items()
        ]
        conditions.append(
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "the fake kubelet is posting ready status",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        )
        return conditions

    def _patch_node_status(self, status: dict[str, Any]) -> None:
        self.core.patch_node_status(
            self.node,
            {"status": status},
            _content_type="application/strategic-merge-patch+json",
        )

    def _renew_lease(self) -> None:
        coordination = client.CoordinationV1Api(self.api)
        namespace = "kube-node-lease"
        while not self._stop.wait(0):
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.node, namespace=namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=self.node,
                    lease_duration_seconds=LEASE_SECONDS,
                    renew_time=_now(),
                ),
            )
            try:
                try:
                    existing = coordination.read_namespaced_lease(self.node, namespace)
                    body.metadata.resource_version = existing.metadata.resource_version
                    coordination.replace_namespaced_lease(self.node, namespace, body)
                except ApiException as error:
                    if error.status != 404:
                        raise
                    coordination.create_namespaced_lease(namespace, body)
                self._patch_node_status({"conditions": self._conditions()})
            except Exception as error:
                log.warning("fake kubelet: heartbeat failed: %s", error)
            self._stop.wait(5)

    # --- pods -----------------------------------------------------------------------------------

    def _sync_pods(self) -> None:
        while not self._stop.wait(0.1):
            try:
                pods = self.core.list_pod_for_all_namespaces(
                    field_selector=f"spec.nodeName={self.node}", _request_timeout=10
                ).items
            except Exception as error:
                log.warning("fake kubelet: cannot list pods: %s", error)
                continue
            for pod in pods:
                uid = pod.metadata.uid
                runner = self.pods.get(uid)
                if runner is None:
                    runner = PodRunner(self, pod, self.root / uid)
                    self.pods[uid] = runner
                    key = f"{pod.metadata.namespace}/{pod.metadata.name}"
                    self.seen.setdefault(key, []).append(uid)
                    runner.start()
                if pod.metadata.deletion_timestamp is not None:
                    runner.delete(pod.metadata.deletion_grace_period_seconds or 0)

    # --- logs -----------------------------------------------------------------------------------

    def _serve_logs(self) -> None:
        kubelet = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                segments = parts.path.strip("/").split("/")
                runner = None
                if len(segments) == 4 and segments[0] == "containerLogs":
                    runner = kubelet.find(segments[1], segments[2])
                data = runner.log_of(segments[3]) if runner is not None else None
                if data is None:
                    self.send_error(400 if runner is not None else 404, "no such container log")
                    return
                limit = parse_qs(parts.query).get("limitBytes")
                if limit:
                    data = data[: int(limit[0])]
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert, key = _certificate(self.root)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True, name="kubelet-logs")
        thread.start()
        self._server = server


@contextlib.contextmanager
def fake_kubelet(api: client.ApiClient, images: dict[str, str]) -> Iterator[FakeKubelet]:
    kubelet = FakeKubelet(api, images)
    kubelet.start()
    try:
        yield kubelet
    finally:
        kubelet.stop()
