"""The Kubernetes tier end to end: the real provisioner deploys a consumer, the consumer's real
workflow-api runs its jobs as Kubernetes Jobs, the provisioner tears it all down.

The two halves meet here as in production, on the session's KWOK cluster (real API server,
controllers, scheduler, RBAC, quota):

- the stage is what the Helm chart installs (namespace `workflow-system`, the provisioner's
  ServiceAccount and ClusterRole, the runner's ClusterRole); the provisioner runs with a
  TokenRequest token of that ServiceAccount and nothing else, with `deployer=kubernetes`, a
  data-sidecar image (so its workflow-apis run jobs as Kubernetes Jobs) and S3 storage with a
  MinIO bucket and user per consumer (the chart's default);
- the test plays the kubelet of the consumer's workflow-api pod: KWOK marks the pod Running
  without running it, so the test reads the pod's container and the Secret its `envFrom` names,
  as a kubelet would, and runs `workflow-api serve` with exactly that environment except:

  ====================================== ===================================================
  override                               why (what the pod has instead)
  ====================================== ===================================================
  listen on 127.0.0.1:<free port>        `--host 0.0.0.0 --port 8080` inside the pod network
  WORKFLOW_API_DATA_DIR = a tmp dir      the claim mounted at /data
  WORKFLOW_API_ASSETS_DIR = the catalog  the catalog baked into the image at /assets
  WORKFLOW_API_KUBERNETES_KUBECONFIG     the ServiceAccount token the kubelet mounts: here a
                                         TokenRequest token of the namespace's `workflow-api`
                                         ServiceAccount, so the runner has exactly the
                                         RoleBinding the deployer made
  WORKFLOW_API_KUBERNETES_NAMESPACE      read from that mount in a pod
  ====================================== ===================================================

  Everything else comes from the deployer's Secret, unchanged: identity, public URL, JWKS URL
  (the provisioner on loopback), S3 endpoint and the consumer's own MinIO keys, runner and
  sidecar image. The node selector and toleration that steer job pods onto `FakeKubelet`'s node
  are operator settings (`PROVISIONER_KUBERNETES_WORKFLOW_API_ENV`), so they too reach the pod
  through the Secret; job pods' containers then run as local processes (`fake_kubelet`).
- the test plays the ingress controller (`fake_ingress`): KWOK has none. The provisioner's
  public URLs point at it (`KUBERNETES_PUBLIC_PORT` with `localhost`, `http`), it routes by the
  live Ingress objects, strips the path prefix as a rewrite annotation would, and forwards to the
  local process registered as the Service's endpoint. The provisioner reaches the workflow-api's
  admin API through it (`KUBERNETES_REACH_WORKFLOW_API=public-url`): the production default, the
  Service's cluster DNS name, resolves nowhere here.

Why S3 and not filesystem storage: with filesystem storage, signed URLs point at the
workflow-api itself, which job pods cannot reach in production (the deployer's `job-egress`
NetworkPolicy allows DNS and the storage CIDRs only); with S3 the job pods talk to MinIO only,
as they would in a cluster. NetworkPolicies themselves are not enforced here (no CNI).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from provisioner.deployers.kubernetes.spec import (
    API_NAME,
    GRANTS_ANNOTATION,
    QUOTA_NAME,
    RUNNER_CLUSTER_ROLE,
)
from workflow_api.execution.kubernetes.objects import job_name
from workflow_testkit.kubernetes.cluster import ClusterHandle
from workflow_testkit.kubernetes.fake_ingress import FakeIngress, fake_ingress
from workflow_testkit.kubernetes.fake_kubelet import NODE_LABEL, TAINT_KEY, FakeKubelet
from workflow_testkit.kubernetes.fake_pod import bin_path
from workflow_testkit.kubernetes.stage import (
    install_provisioner_rbac,
    kubeconfig_for_token,
    namespace_gone,
    secret_data,
    service_account_token,
    static_volumes,
    wait_for,
)
from workflow_testkit.ports import bound_socket
from workflow_testkit.provisioner import RunningProvisioner, start_provisioner
from workflow_testkit.servers.minio import MinioServer
from workflow_testkit.workflow_api import DUMMY_ASSETS

pytestmark = [pytest.mark.slow, pytest.mark.minio]

API_IMAGE = "registry.invalid/workflow/workflow-api:test"  # KWOK "runs" it; never pulled
SIDECAR_IMAGE = "registry.test/workflow/data-sidecar:test"
DUMMY_IMAGE = "ghcr.io/workflow-middle-layer/dummy-job:0.1.0"  # dummy-job/assets/*.yaml
PROVISIONER_NAMESPACE = "workflow-system"
PROVISIONER_ACCOUNT = "workflow-provisioner"
PROVISIONER_ROLE = "workflow-provisioner"
STORAGE_CLASS = "test-full-flow-static"
NAMESPACE_PREFIX = "e2e-"
QUOTA_CPU = "4"
GREEDY_ASSET = {  # more CPU than the consumer's quota holds
    "id": "greedy",
    "title": "Asks for more CPU than the consumer's quota",
    "execution": {
        "image": DUMMY_IMAGE,
        "command": ["dummy-job"],
        "args": ["dummy"],
        "resources": {"cpu": "8", "memory": "64Mi"},
        "timeout_seconds": 60,
    },
}


# --- the stage --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def admin(kubernetes_cluster: ClusterHandle) -> Iterator[client.ApiClient]:
    with kubernetes_cluster.api_client() as api:
        yield api


@pytest.fixture(scope="module")
def provisioner_kubeconfig(
    kubernetes_cluster: ClusterHandle,
    admin: client.ApiClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    """RBAC as the chart installs it, a volume for the consumer's claim, and a kubeconfig with
    nothing but a token of the provisioner's ServiceAccount."""
    install_provisioner_rbac(
        admin,
        namespace=PROVISIONER_NAMESPACE,
        account=PROVISIONER_ACCOUNT,
        role=PROVISIONER_ROLE,
        runner_role=RUNNER_CLUSTER_ROLE,
    )
    token = service_account_token(admin, PROVISIONER_ACCOUNT, PROVISIONER_NAMESPACE)
    path = tmp_path_factory.mktemp("provisioner-kubeconfig") / "kubeconfig.yaml"
    with static_volumes(admin, 1, STORAGE_CLASS):
        yield kubeconfig_for_token(kubernetes_cluster, token, path)


@pytest.fixture(scope="module")
def kubelet(kubernetes_cluster: ClusterHandle) -> Iterator[FakeKubelet]:
    with kubernetes_cluster.api_client() as api:
        running = FakeKubelet(
            api, {SIDECAR_IMAGE: "data-sidecar", DUMMY_IMAGE: "dummy-job"}, node="py-kubelet-e2e"
        )
        running.start()
        try:
            yield running
        finally:
            running.stop()


@pytest.fixture(scope="module")
def ingress(kubernetes_cluster: ClusterHandle) -> Iterator[FakeIngress]:
    with kubernetes_cluster.api_client() as api, fake_ingress(api) as running:
        yield running


@pytest.fixture(scope="module")
def assets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dummy assets plus `greedy`: the catalog of both the provisioner and the image."""
    directory = tmp_path_factory.mktemp("assets")
    for source in DUMMY_ASSETS.glob("*.yaml"):
        shutil.copy(source, directory / source.name)
    (directory / "greedy.yaml").write_text(yaml.safe_dump(GREEDY_ASSET))
    return directory


# --- playing the kubelet of the workflow-api pod ------------------------------------------------


@dataclass
class LocalPod:
    """A pod's one container, run as a local process group."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _listen_locally(arguments: list[str], port: int) -> list[str]:
    """The container's arguments with `--host`/`--port` on loopback."""
    local = list(arguments)
    for flag, value in (("--host", "127.0.0.1"), ("--port", str(port))):
        local[local.index(flag) + 1] = value
    return local


def run_api_pod(
    admin: client.ApiClient, pod: Any, overrides: dict[str, str], directory: Path
) -> LocalPod:
    """Run the pod's container as a kubelet would: its command and arguments, the variables
    of the Secrets its `envFrom` names and its literal `env` (plus `overrides`)."""
    (container,) = pod.spec.containers
    namespace = pod.metadata.namespace
    environment = {"PATH": bin_path(), "HOME": str(directory), "LANG": "C.UTF-8"}
    for source in container.env_from or []:
        assert source.secret_ref is not None, "only Secrets are expected in envFrom"
        environment |= secret_data(admin, namespace, source.secret_ref.name)
    for variable in container.env or []:
        assert variable.value_from is None, "only literal variables are expected in env"
        environment[variable.name] = variable.value or ""
    environment |= overrides
    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()
    command = [*container.command, *_listen_locally(container.args, port)]
    log_path = directory / "workflow-api.log"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            command,
            env=environment,
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    local = LocalPod(process, f"http://127.0.0.1:{port}", log_path)

    def answers() -> bool:
        assert process.poll() is None, f"workflow-api exited:\n{local.log_tail()}"
        try:
            return httpx.get(f"{local.url}/conformance", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, "the workflow-api to answer", 60)
    except AssertionError:
        local.stop()
        raise
    return local


# --- small looks --------------------------------------------------------------------------------


def job_exists(admin: client.ApiClient, namespace: str, job_id: str) -> bool:
    try:
        client.BatchV1Api(admin).read_namespaced_job(job_name(job_id), namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def worker_running(kubelet: FakeKubelet, namespace: str, job_id: str) -> bool:
    for pod in list(kubelet.pods.values()):
        if (pod.namespace, pod.name.rsplit("-", 1)[0]) == (namespace, job_name(job_id)):
            process = pod.processes.get("worker")
            return process is not None and process.poll() is None
    return False


def wait_for_job(consumer: httpx.Client, job_id: str, timeout: float = 90) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        info: dict[str, Any] = consumer.get(f"/jobs/{job_id}").raise_for_status().json()
        return info if info["status"] in {"successful", "failed", "dismissed"} else None

    result: dict[str, Any] = wait_for(finished, f"job {job_id} to finish", timeout)
    return result


def execute(consumer: httpx.Client, process_id: str, inputs: dict[str, Any]) -> str:
    answer = consumer.post(f"/processes/{process_id}/execution", json={"inputs": inputs})
    assert answer.status_code == 201, answer.text
    job_id: str = answer.json()["jobID"]
    return job_id


def grants_of(running: RunningProvisioner, consumer_id: str) -> dict[str, dict[str, Any]]:
    return {g["assetId"]: g for g in running.admin_api.grants() if g["consumerId"] == consumer_id}


# --- the flow -----------------------------------------------------------------------------------


@pytest.mark.timeout(600)  # alone, the run includes starting the session's cluster
def test_a_consumer_the_provisioner_deploys_runs_jobs_on_kubernetes_until_torn_down(
    admin: client.ApiClient,
    provisioner_kubeconfig: Path,
    kubelet: FakeKubelet,
    ingress: FakeIngress,
    assets_dir: Path,
    minio_server: MinioServer,
    kubernetes_cluster: ClusterHandle,
    tmp_path: Path,
) -> None:
    running = start_provisioner(
        tmp_path / "provisioner",
        None,
        assets_dir=assets_dir,
        callback_deadline_seconds=300,  # how long a hand grant's delivery is retried
        deployer="kubernetes",
        storage="s3",
        s3_endpoint=f"http://{minio_server.endpoint}",
        s3_access_key=minio_server.root_user,
        s3_secret_key=minio_server.root_password,
        s3_bucket="e2e",
        s3_isolation="minio",
        kubernetes_kubeconfig=provisioner_kubeconfig,
        kubernetes_workflow_api_image=API_IMAGE,
        kubernetes_sidecar_image=SIDECAR_IMAGE,
        kubernetes_namespace_prefix=NAMESPACE_PREFIX,
        kubernetes_provisioner_namespace=PROVISIONER_NAMESPACE,
        kubernetes_ingress_domain="localhost",
        kubernetes_public_scheme="http",
        kubernetes_public_port=ingress.port,
        kubernetes_reach_workflow_api="public-url",
        kubernetes_quota_cpu=QUOTA_CPU,
        kubernetes_data_storage_class=STORAGE_CLASS,
        kubernetes_data_volume_size="1Gi",
        kubernetes_storage_egress_cidrs=["127.0.0.1/32"],
        kubernetes_removal_timeout_seconds=90,
        kubernetes_workflow_api_env={
            "WORKFLOW_API_KUBERNETES_NODE_SELECTOR": json.dumps({NODE_LABEL: "python"}),
            "WORKFLOW_API_KUBERNETES_TOLERATIONS": json.dumps(
                [{"key": TAINT_KEY, "operator": "Exists"}]
            ),
            "WORKFLOW_API_KUBERNETES_POLL_SECONDS": "0.5",
        },
    )
    consumer_id = f"did:web:e2e.example:{uuid.uuid4().hex[:6]}"
    namespace = ""
    pod: LocalPod | None = None
    try:
        # 1. Grants by hand: the consumer's namespace appears, its Deployment becomes available
        secrets = {}
        for asset_id in ("dummy", "greedy"):
            answer = running.admin.post(
                "/admin/grants", json={"consumer_id": consumer_id, "asset_id": asset_id}
            )
            assert answer.status_code == 201, answer.text
            secrets[asset_id] = answer.json()["secret"]
        row = wait_for(
            lambda: (c := running.admin_api.consumer(consumer_id)) and c["state"] == "ready" and c,
            "the consumer to be ready",
            90,
        )
        slug = row["slug"]
        namespace = f"{NAMESPACE_PREFIX}{slug}"
        endpoint = f"http://localhost:{ingress.port}/consumers/{slug}"
        assert row["endpoint"] == endpoint
        core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
        annotations = core.read_namespace(namespace).metadata.annotations
        assert json.loads(annotations[GRANTS_ANNOTATION]) == ["dummy", "greedy"]
        deployment = client.AppsV1Api(admin).read_namespaced_deployment(API_NAME, namespace)
        assert deployment.status.available_replicas == 1
        binding = rbac.read_namespaced_role_binding(API_NAME, namespace)
        assert (binding.role_ref.kind, binding.role_ref.name) == (
            "ClusterRole",
            RUNNER_CLUSTER_ROLE,
        )
        assert [(s.kind, s.name) for s in binding.subjects] == [("ServiceAccount", API_NAME)]
        quota = core.read_namespaced_resource_quota(QUOTA_NAME, namespace)
        assert quota.spec.hard["limits.cpu"] == QUOTA_CPU
        (route,) = (
            client.NetworkingV1Api(admin)
            .read_namespaced_ingress(API_NAME, namespace)
            .spec.rules[0]
            .http.paths
        )
        assert route.path == f"/consumers/{slug}"
        config = secret_data(admin, namespace)
        assert config["WORKFLOW_API_PUBLIC_URL"] == endpoint  # used as is by the local process
        assert config["WORKFLOW_API_RUNNER"] == "kubernetes"
        assert config["WORKFLOW_API_KUBERNETES_SIDECAR_IMAGE"] == SIDECAR_IMAGE
        assert config["WORKFLOW_API_STORAGE"] == "s3"
        bucket = config["WORKFLOW_API_S3_BUCKET"]
        assert config["WORKFLOW_API_S3_ACCESS_KEY"] == bucket != minio_server.root_user
        assert minio_server.client().bucket_exists(bucket)

        # Nothing answers behind the Ingress yet: the grants wait, retried through it
        wait_for(
            lambda: all(g["lastError"] for g in grants_of(running, consumer_id).values()),
            "the grants to be retried",
        )
        for grant in grants_of(running, consumer_id).values():
            assert grant["state"] == "provisioning"
            assert "503" in grant["lastError"], grant

        # 2. Play the kubelet of the workflow-api pod; the provisioner's grants then arrive
        (api_pod,) = wait_for(
            lambda: [
                p
                for p in core.list_namespaced_pod(
                    namespace, label_selector="app.kubernetes.io/component=api"
                ).items
                if p.spec.node_name and p.metadata.deletion_timestamp is None
            ],
            "the workflow-api pod to be scheduled",
        )
        assert api_pod.spec.containers[0].image == API_IMAGE
        runner_token = service_account_token(admin, API_NAME, namespace)
        directory = tmp_path / "api-pod"
        (directory / "data").mkdir(parents=True)
        overrides = {
            "WORKFLOW_API_DATA_DIR": str(directory / "data"),
            "WORKFLOW_API_ASSETS_DIR": str(assets_dir),
            "WORKFLOW_API_KUBERNETES_KUBECONFIG": str(
                kubeconfig_for_token(kubernetes_cluster, runner_token, directory / "kubeconfig")
            ),
            "WORKFLOW_API_KUBERNETES_NAMESPACE": namespace,
        }
        pod = run_api_pod(admin, api_pod, overrides, directory)
        ingress.backends[(namespace, API_NAME)] = pod.url
        wait_for(
            lambda: {g["state"] for g in grants_of(running, consumer_id).values()} == {"active"},
            "the grants to reach the workflow-api",
            90,
        )

        # 3. The consumer's view: credentials, then its own API with its own token
        credentials = running.credentials(secrets["dummy"])
        assert credentials["endpoint"] == endpoint
        assert credentials["assets"] == ["dummy", "greedy"]
        headers = {"Authorization": f"Bearer {credentials['token']}"}
        consumer = httpx.Client(base_url=endpoint, headers=headers, timeout=60)
        running.clients.append(consumer)
        listed = consumer.get("/processes").raise_for_status().json()["processes"]
        assert sorted(p["id"] for p in listed) == ["dummy", "greedy"]

        # 4a. A job runs as a Kubernetes Job, its result and log land in the consumer's bucket
        job_id = execute(consumer, "dummy", {"duration": 2})
        info = wait_for_job(consumer, job_id)
        assert info["status"] == "successful", (info, pod.log_tail())
        href = consumer.get(f"/jobs/{job_id}/results").raise_for_status().json()["result"]["href"]
        redirect = consumer.get(href)
        assert redirect.status_code == 307
        assert redirect.headers["Location"].startswith(f"http://{minio_server.endpoint}/{bucket}/")
        assert "duration: 2 s" in consumer.get(href, follow_redirects=True).text
        log = consumer.get(f"/jobs/{job_id}/logs", follow_redirects=True)
        assert log.status_code == 200
        assert "wrote output result" in log.text
        wait_for(lambda: not job_exists(admin, namespace, job_id), "the finished Job deleted")

        # 4b. A long job dismissed: its Job is gone by the answer, its worker stopped
        long_job = execute(consumer, "dummy", {"duration": 300})
        wait_for(lambda: worker_running(kubelet, namespace, long_job), "the worker running", 90)
        answer = consumer.delete(f"/jobs/{long_job}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "dismissed"
        assert not job_exists(admin, namespace, long_job)
        wait_for(lambda: not worker_running(kubelet, namespace, long_job), "the worker gone", 30)

        # 4c. The deployer's quota refuses a job asking for more CPU than it holds
        greedy = execute(consumer, "greedy", {})
        refused = wait_for_job(consumer, greedy)
        assert refused["status"] == "failed"
        assert refused["message"].startswith(
            "the consumer's resource quota does not allow this job: "
        )
        assert f"exceeded quota: {QUOTA_NAME}" in refused["message"]
        assert not job_exists(admin, namespace, greedy)

        # 5a. One grant revoked: the workflow-api no longer offers its asset
        grant_id = grants_of(running, consumer_id)["greedy"]["id"]
        assert running.admin.delete(f"/admin/grants/{grant_id}").status_code == 200
        wait_for(
            lambda: grants_of(running, consumer_id)["greedy"]["state"] == "revoked",
            "the grant revoked",
        )
        assert consumer.get("/processes/greedy").status_code == 404
        assert consumer.post("/processes/greedy/execution", json={"inputs": {}}).status_code == 404
        assert (
            httpx.get(
                f"{running.base_url}/credentials",
                headers={"Authorization": f"Bearer {secrets['greedy']}"},
            ).status_code
            == 404
        )

        # 5b. Torn down: data purged through its API, namespace gone, bucket and user gone
        assert running.admin.delete(f"/admin/consumers/{consumer_id}").status_code == 200
        wait_for(
            lambda: (c := running.admin_api.consumer(consumer_id)) and c["state"] == "removed",
            "the consumer removed",
            150,
        )
        with pytest.raises(ApiException) as missing:
            core.read_namespace(namespace)
        assert missing.value.status == 404
        assert not minio_server.client().bucket_exists(bucket)
        assert (
            httpx.get(
                f"{running.base_url}/credentials",
                headers={"Authorization": f"Bearer {secrets['dummy']}"},
            ).status_code
            == 404
        )
        assert consumer.get("/processes").status_code == 404  # no Ingress routes it any more
    finally:
        if pod is not None:
            pod.stop()
        running.stop()
        if namespace and not namespace_gone(admin, namespace):
            client.CoreV1Api(admin).delete_namespace(namespace)
