"""The Kubernetes job runner against a real control plane, through a real workflow-api.

The cluster is the session's KWOK cluster (real API server, controller-manager with the Job,
garbage-collector and quota controllers, scheduler). Job pods are steered by the runner's node
selector and toleration onto the node of `FakeKubelet`, which runs their containers as local
processes (see `fake_kubelet`): the real `data-sidecar stage-in` and `follow` and the real
`dummy-job` worker, against this API's filesystem storage and its signed URLs. The workflow-api
talks to the cluster with a namespaced ServiceAccount token bound, as the provisioner binds it,
to the ClusterRole built from `ROLE_RULES`: no more rights than in production.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from provisioner.deployers.kubernetes.objects import (
    make_job_service_account,
    make_role_binding,
    make_service_account,
)
from provisioner.deployers.kubernetes.rbac import make_runner_cluster_role
from provisioner.deployers.kubernetes.settings import KubernetesSettings
from provisioner.deployers.kubernetes.spec import ConsumerDeploymentSpec, IngressSpec
from provisioner.tokens.signing_key import SigningKey
from workflow_api.app import create_app
from workflow_api.execution.kubernetes.objects import job_name, job_selector
from workflow_testkit.kubernetes.cluster import ClusterHandle
from workflow_testkit.kubernetes.fake_kubelet import (
    NODE_LABEL,
    TAINT_KEY,
    FakeKubelet,
    fake_kubelet,
)
from workflow_testkit.kubernetes.stage import kubeconfig_for_token, service_account_token, wait_for
from workflow_testkit.workflow_api import (
    DUMMY_ASSETS,
    RunningApi,
    ThreadedServer,
    execute,
    make_settings,
    wait_for_job,
)

pytestmark = pytest.mark.slow

SIDECAR_IMAGE = "registry.test/workflow/data-sidecar:test"
DUMMY_IMAGE = "ghcr.io/workflow-middle-layer/dummy-job:0.1.0"
EXTRA_ASSETS = {
    "memory-hog.yaml": {
        "id": "memory-hog",
        "title": "Allocates more memory than its limit",
        "execution": {
            "image": DUMMY_IMAGE,
            "command": ["python3", "-c"],
            "args": ["import time; block = b'x' * (200 * 2**20); time.sleep(30)"],
            "resources": {"cpu": "100m", "memory": "64Mi"},
            "timeout_seconds": 120,
        },
    },
    "missing-image.yaml": {
        "id": "missing-image",
        "title": "An image no registry has",
        "execution": {"image": "registry.test/nobody/nothing:0", "command": ["true"]},
    },
    "hasty.yaml": {
        "id": "hasty",
        "title": "The dummy job with a 12 s timeout",
        "inputs": [{"id": "duration", "kind": "literal", "type": "number"}],
        "outputs": [{"id": "result"}],
        "execution": {
            "image": DUMMY_IMAGE,
            "command": ["dummy-job"],
            "args": ["dummy"],
            "resources": {"cpu": "100m", "memory": "64Mi"},
            "timeout_seconds": 12,
        },
    },
}
GRANTS = ("dummy", "echo", "input-dummy", "memory-hog", "missing-image", "hasty")


@dataclass
class Consumer:
    namespace: str
    kubeconfig: Path


@pytest.fixture(scope="module")
def signing_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def admin(kubernetes_cluster: ClusterHandle) -> Iterator[client.ApiClient]:
    with kubernetes_cluster.api_client() as api:
        api.configuration.connection_pool_maxsize = 32
        yield api


@pytest.fixture(scope="module")
def kubelet(kubernetes_cluster: ClusterHandle) -> Iterator[FakeKubelet]:
    with (
        kubernetes_cluster.api_client() as api,
        fake_kubelet(api, {SIDECAR_IMAGE: "data-sidecar", DUMMY_IMAGE: "dummy-job"}) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def assets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("assets")
    for source in DUMMY_ASSETS.glob("*.yaml"):
        shutil.copy(source, directory / source.name)
    for name, asset in EXTRA_ASSETS.items():
        (directory / name).write_text(yaml.safe_dump(asset))
    return directory


@pytest.fixture
def consumer(
    kubernetes_cluster: ClusterHandle, admin: client.ApiClient, tmp_path: Path
) -> Iterator[Consumer]:
    """A consumer namespace as the provisioner makes it: the two ServiceAccounts and the
    RoleBinding to the runner's ClusterRole; a token of the workflow-api's ServiceAccount."""
    namespace = f"wf-{uuid.uuid4().hex[:8]}"
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    spec = ConsumerDeploymentSpec(
        consumer_id="consumer-a",
        slug="consumer-a",
        namespace=namespace,
        token_audience="workflow-api/consumer-a",
        public_url="http://127.0.0.1",
        ingress=IngressSpec(path_prefix="/"),
        kubernetes=KubernetesSettings(
            workflow_api_image="registry.test/workflow-api:test",
            provisioner_namespace="workflow-provisioner",
            ingress_namespace="ingress-nginx",
        ),
    )
    try:
        rbac.create_cluster_role(make_runner_cluster_role(spec.kubernetes.runner_cluster_role))
    except ApiException as error:
        if error.status != 409:
            raise
    for account in (make_service_account(spec), make_job_service_account(spec)):
        core.create_namespaced_service_account(namespace, account)
    rbac.create_namespaced_role_binding(namespace, make_role_binding(spec))
    token = service_account_token(admin, "workflow-api", namespace)
    kubeconfig = kubeconfig_for_token(kubernetes_cluster, token, tmp_path / "kubeconfig.yaml")
    yield Consumer(namespace, kubeconfig)
    core.delete_namespace(namespace)


@pytest.fixture
def start(
    consumer: Consumer,
    kubelet: FakeKubelet,
    assets_dir: Path,
    tmp_path: Path,
    signing_key: SigningKey,
) -> Iterator[Callable[..., RunningApi]]:
    """Start a workflow-api with the Kubernetes runner (again on `port`, for a restart)."""
    started: list[RunningApi] = []

    def run(port: int = 0, **overrides: Any) -> RunningApi:
        data_dir = tmp_path / "api"
        data_dir.mkdir(exist_ok=True)
        jwks = signing_key.write_jwks(tmp_path / "jwks.json")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        values: dict[str, Any] = {
            "assets_dir": assets_dir,
            "runner": "kubernetes",
            "kubernetes_namespace": consumer.namespace,
            "kubernetes_kubeconfig": consumer.kubeconfig,
            "kubernetes_sidecar_image": SIDECAR_IMAGE,
            "kubernetes_node_selector": {NODE_LABEL: "python"},
            "kubernetes_tolerations": [{"key": TAINT_KEY, "operator": "Exists"}],
            "kubernetes_poll_seconds": 0.3,
            "kubernetes_push_out_grace_seconds": 20,
            "kubernetes_sidecar_cpu": "50m",
            "kubernetes_sidecar_memory": "64Mi",
        }
        settings = make_settings(data_dir, jwks, sock, **(values | overrides))
        server = ThreadedServer(create_app(settings), sock)
        server.start()
        api = RunningApi(settings=settings, key=signing_key, server=server)
        started.append(api)
        api.grant(*GRANTS)
        return api

    yield run
    for api in reversed(started):
        if api.server.server.started and not api.server.server.should_exit:
            api.stop()


def _batch(admin: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(admin)


def _job_exists(admin: client.ApiClient, namespace: str, job_id: str) -> bool:
    try:
        _batch(admin).read_namespaced_job(job_name(job_id), namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def _pods(admin: client.ApiClient, namespace: str, job_id: str) -> list[Any]:
    core = client.CoreV1Api(admin)
    return list(core.list_namespaced_pod(namespace, label_selector=job_selector(job_id)).items)


def _worker_running(kubelet: FakeKubelet, namespace: str, job_id: str) -> bool:
    for runner in list(kubelet.pods.values()):
        process = runner.processes.get("worker")
        if (runner.namespace, runner.name.rsplit("-", 1)[0]) == (namespace, job_name(job_id)):
            return process is not None and process.poll() is None
    return False


def _download(client_: httpx.Client, url: str) -> httpx.Response:
    response = client_.get(url, follow_redirects=True)
    response.raise_for_status()
    return response


# --- the tests ------------------------------------------------------------------------------------


def test_a_job_runs_as_a_kubernetes_job_with_progress_results_and_log(
    start: Callable[..., RunningApi], consumer: Consumer, admin: client.ApiClient
) -> None:
    api = start()
    client_ = api.consumer
    job_id = execute(client_, "dummy", {"duration": 4})

    info = wait_for_job(client_, job_id, {"running", "successful", "failed"})
    seen: set[int] = set()
    live = ""
    while info["status"] == "running":
        seen.add(info["progress"])
        if 0 < info["progress"] < 90 and not live:
            live = client_.get(f"/jobs/{job_id}/logs").text
        time.sleep(0.2)
        info = client_.get(f"/jobs/{job_id}").json()
    info = wait_for_job(client_, job_id)

    assert info["status"] == "successful", info
    assert any(0 < value < 100 for value in seen), seen
    assert "dummy job: running for 4 s" in live
    result = _download(client_, client_.get(f"/jobs/{job_id}/results").json()["result"]["href"])
    assert "duration: 4 s" in result.text
    log = _download(client_, f"/jobs/{job_id}/logs").text
    assert "wrote output result" in log
    wait_for(lambda: not _job_exists(admin, consumer.namespace, job_id), "the Job deleted")
    secrets = client.CoreV1Api(admin).list_namespaced_secret(
        consumer.namespace, label_selector=job_selector(job_id)
    )
    wait_for(
        lambda: (
            not client.CoreV1Api(admin)
            .list_namespaced_secret(consumer.namespace, label_selector=job_selector(job_id))
            .items
        ),
        f"the manifest Secret collected ({len(secrets.items)} left)",
    )

    echoed = execute(client_, "echo", {"message": "héllo kubernetes"})
    assert wait_for_job(client_, echoed)["status"] == "successful"
    href = client_.get(f"/jobs/{echoed}/results").json()["echo"]["href"]
    assert _download(client_, href).text == "héllo kubernetes"


def test_dismissing_a_running_job_deletes_its_kubernetes_job(
    start: Callable[..., RunningApi],
    consumer: Consumer,
    admin: client.ApiClient,
    kubelet: FakeKubelet,
) -> None:
    api = start(dismiss_grace_seconds=2)
    client_ = api.consumer
    job_id = execute(client_, "dummy", {"duration": 120})
    wait_for(lambda: _worker_running(kubelet, consumer.namespace, job_id), "the worker running")
    wait_for(lambda: client_.get(f"/jobs/{job_id}").json()["progress"] > 0, "progress")

    began = time.monotonic()
    answer = client_.delete(f"/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "dismissed"
    assert time.monotonic() - began < 30
    assert not _job_exists(admin, consumer.namespace, job_id)  # gone before the answer
    assert not _pods(admin, consumer.namespace, job_id)
    assert not _worker_running(kubelet, consumer.namespace, job_id)
    log = _download(client_, f"/jobs/{job_id}/logs").text
    assert "dummy job: running for 120 s" in log
    assert "[runner] the job was dismissed" in log


def test_failing_and_out_of_memory_workers_fail_with_clear_messages(
    start: Callable[..., RunningApi], consumer: Consumer, admin: client.ApiClient
) -> None:
    api = start()
    client_ = api.consumer
    failing = execute(client_, "dummy", {"duration": 0, "fail": True})
    hog = execute(client_, "memory-hog", {})

    failed = wait_for_job(client_, failing)
    assert (failed["status"], failed["message"]) == ("failed", "the worker exited with code 3")
    assert "failing on purpose" in _download(client_, f"/jobs/{failing}/logs").text
    killed = wait_for_job(client_, hog)
    assert killed["status"] == "failed"
    assert killed["message"] == "the worker ran out of memory and was killed (OOMKilled)"
    for job_id in (failing, hog):
        wait_for(lambda j=job_id: not _job_exists(admin, consumer.namespace, j), "Job deleted")


def test_an_image_that_cannot_be_pulled_fails_the_job_at_once(
    start: Callable[..., RunningApi], consumer: Consumer, admin: client.ApiClient
) -> None:
    api = start()
    client_ = api.consumer
    job_id = execute(client_, "missing-image", {})
    info = wait_for_job(client_, job_id, timeout=60)
    assert info["status"] == "failed"
    assert info["message"].startswith(
        "the worker container (image registry.test/nobody/nothing:0) cannot start: "
    )
    assert "ErrImagePull" in info["message"] or "ImagePullBackOff" in info["message"]
    assert not _job_exists(admin, consumer.namespace, job_id)


def test_a_job_the_quota_refuses_fails_with_a_clear_message(
    start: Callable[..., RunningApi], consumer: Consumer, admin: client.ApiClient
) -> None:
    core = client.CoreV1Api(admin)
    core.create_namespaced_resource_quota(
        consumer.namespace,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="consumer-quota"),
            spec=client.V1ResourceQuotaSpec(hard={"limits.memory": "100Mi"}),
        ),
    )
    wait_for(
        lambda: core.read_namespaced_resource_quota("consumer-quota", consumer.namespace).status,
        "the quota controller to count",
    )
    api = start()
    client_ = api.consumer
    job_id = execute(client_, "echo", {"message": "too big"})
    info = wait_for_job(client_, job_id, timeout=60)
    assert info["status"] == "failed"
    assert info["message"].startswith("the consumer's resource quota does not allow this job: ")
    assert "exceeded quota: consumer-quota" in info["message"]
    assert not _job_exists(admin, consumer.namespace, job_id)


def test_a_failed_stage_in_fails_the_job_with_the_sidecars_reason(
    start: Callable[..., RunningApi], consumer: Consumer
) -> None:
    class Missing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Missing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = start(egress_allow_cidrs=["127.0.0.1/32"])  # the pod's stage-in checks it too
        client_ = api.consumer
        base = f"http://127.0.0.1:{server.server_address[1]}"
        job_id = execute(
            client_,
            "input-dummy",
            {"dataset": {"href": f"{base}/data.zip"}, "document": {"href": f"{base}/doc.txt"}},
        )
        info = wait_for_job(client_, job_id, timeout=60)
    finally:
        server.shutdown()
    assert info["status"] == "failed"
    assert info["message"] == (
        f"stage-in failed: stage-in of job {job_id} failed: input 'dataset': "
        f"GET {base}/data.zip answered HTTP 404"
    )
    log = _download(client_, f"/jobs/{job_id}/logs").text
    assert "[stage-in] " in log and "answered HTTP 404" in log


def test_the_asset_timeout_is_the_jobs_deadline(
    start: Callable[..., RunningApi], consumer: Consumer
) -> None:
    api = start()
    client_ = api.consumer
    job_id = execute(client_, "hasty", {"duration": 60})
    wait_for(lambda: client_.get(f"/jobs/{job_id}").json()["progress"] > 0, "the worker at work")
    info = wait_for_job(client_, job_id, timeout=60)
    assert (info["status"], info["message"]) == ("failed", "the job timed out after 12 s")
    assert "dummy job: running for 60 s" in _download(client_, f"/jobs/{job_id}/logs").text


def test_a_restarted_api_reattaches_to_its_running_job(
    start: Callable[..., RunningApi],
    consumer: Consumer,
    admin: client.ApiClient,
    kubelet: FakeKubelet,
) -> None:
    first = start()
    port = int(first.settings.base_url.rsplit(":", 1)[1])
    job_id = execute(first.consumer, "dummy", {"duration": 8})
    wait_for(lambda: _worker_running(kubelet, consumer.namespace, job_id), "the worker running")
    first.stop()
    assert _job_exists(admin, consumer.namespace, job_id), "stopping the API left the Job"

    second = start(port=port)
    client_ = second.consumer
    info = wait_for_job(client_, job_id, timeout=60)
    assert info["status"] == "successful", info
    result = _download(client_, client_.get(f"/jobs/{job_id}/results").json()["result"]["href"])
    assert "duration: 8 s" in result.text
    pods = [key for key in kubelet.seen if key.startswith(f"{consumer.namespace}/")]
    assert len(pods) == 1 and len(kubelet.seen[pods[0]]) == 1, "the job ran once, in one pod"
