"""The Kubernetes objects of one consumer's workflow-api: pure builders, no I/O, no cluster.

Each consumer has a namespace of its own, named from its slug; inside it the object names are
fixed (`spec.py`), so every name is deterministic and deleting the namespace collects everything.
`make_consumer_objects` lists the objects in apply order: the namespace, then what admission needs
before the first pod (quota, limit range, network policies), then the accounts and their binding,
configuration, storage, the workload and its route. Each builder takes the one spec
(`ConsumerDeploymentSpec`) and is tested as a plain dict.

Longer than our ~300 lines on purpose: one builder per object of a consumer's namespace, read
together (names, labels and ports refer to each other across them), all pure data.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kubernetes import client

from provisioner.deployers.kubernetes.spec import (
    API_NAME,
    API_PORT,
    CONFIG_HASH_ANNOTATION,
    CONFIG_SECRET_NAME,
    CONSUMER_ID_ANNOTATION,
    DATA_CLAIM_NAME,
    DATA_DIR,
    GRANTS_ANNOTATION,
    HEALTH_PATH,
    LIMIT_RANGE_NAME,
    NON_PUBLIC_V4,
    NON_PUBLIC_V6,
    QUOTA_NAME,
    SERVICE_PORT,
    USER_ID,
    ConsumerDeploymentSpec,
    Resources,
)
from workflow_contracts.kubernetes_names import (
    JOB_LABEL_KEY,
    JOB_LABEL_VALUE,
    JOB_SERVICE_ACCOUNT_NAME,
)


def _object(
    model: type[Any],
    api_version: str,
    consumer: ConsumerDeploymentSpec,
    name: str,
    /,
    *,
    component: str = "api",
    annotations: dict[str, str] | None = None,
    **fields: Any,
) -> Any:
    """`model(...)` with apiVersion, kind and metadata (namespace, standard labels) filled in."""
    metadata = client.V1ObjectMeta(
        name=name,
        namespace=consumer.namespace,
        labels=consumer.labels(component),
        annotations=annotations,
    )
    kind = model.__name__.removeprefix("V1")  # V1PersistentVolumeClaim -> PersistentVolumeClaim
    return model(api_version=api_version, kind=kind, metadata=metadata, **fields)


def make_namespace(spec: ConsumerDeploymentSpec) -> client.V1Namespace:
    # Pods come only from the workflow-api (provider-defined job images): baseline is enforced,
    # restricted only reported, so worker images that run as root keep working.
    pod_security = {"enforce": "baseline", "warn": "restricted", "audit": "restricted"}
    labels = spec.labels("consumer")
    labels |= {f"pod-security.kubernetes.io/{mode}": level for mode, level in pod_security.items()}
    annotations = {
        CONSUMER_ID_ANNOTATION: spec.consumer_id,
        GRANTS_ANNOTATION: json.dumps(sorted(set(spec.grants))),
    }
    metadata = client.V1ObjectMeta(name=spec.namespace, labels=labels, annotations=annotations)
    return client.V1Namespace(api_version="v1", kind="Namespace", metadata=metadata)


def make_service_account(spec: ConsumerDeploymentSpec) -> client.V1ServiceAccount:
    """The workflow-api's own: its token is how the job runner reaches the API server."""
    model = client.V1ServiceAccount
    return _object(model, "v1", spec, API_NAME, automount_service_account_token=True)


def make_job_service_account(spec: ConsumerDeploymentSpec) -> client.V1ServiceAccount:
    """For job pods: no token, no permissions."""
    return _object(
        client.V1ServiceAccount,
        "v1",
        spec,
        JOB_SERVICE_ACCOUNT_NAME,
        component="job",
        automount_service_account_token=False,
    )


def make_role_binding(spec: ConsumerDeploymentSpec) -> client.V1RoleBinding:
    """ROLE_RULES for the workflow-api's ServiceAccount, in this namespace only. A RoleBinding to
    a ClusterRole rather than a Role per namespace: creating that Role would need the provisioner
    to hold every rule itself, or `escalate` (see kubernetes_rbac)."""
    group = "rbac.authorization.k8s.io"
    subject = client.RbacV1Subject(kind="ServiceAccount", name=API_NAME, namespace=spec.namespace)
    role = client.V1RoleRef(
        api_group=group, kind="ClusterRole", name=spec.kubernetes.runner_cluster_role
    )
    return _object(
        client.V1RoleBinding, f"{group}/v1", spec, API_NAME, role_ref=role, subjects=[subject]
    )


def make_config_secret(spec: ConsumerDeploymentSpec) -> client.V1Secret:
    return _object(
        client.V1Secret, "v1", spec, CONFIG_SECRET_NAME, type="Opaque", string_data=spec.config()
    )


def make_data_volume_claim(spec: ConsumerDeploymentSpec) -> client.V1PersistentVolumeClaim:
    """The workflow-api's data directory: its SQLite job database must survive pod restarts."""
    claim = client.V1PersistentVolumeClaimSpec(
        access_modes=["ReadWriteOnce"],
        resources=client.V1VolumeResourceRequirements(
            requests={"storage": spec.kubernetes.data_volume_size}
        ),
        storage_class_name=spec.kubernetes.data_storage_class,  # None: the cluster's default
    )
    return _object(client.V1PersistentVolumeClaim, "v1", spec, DATA_CLAIM_NAME, spec=claim)


def _requirements(resources: Resources) -> client.V1ResourceRequirements:
    return client.V1ResourceRequirements(
        requests={"cpu": resources.cpu_request, "memory": resources.memory_request},
        limits={"cpu": resources.cpu_limit, "memory": resources.memory_limit},
    )


def _probe(period_seconds: int, failure_threshold: int) -> client.V1Probe:
    return client.V1Probe(
        http_get=client.V1HTTPGetAction(path=HEALTH_PATH, port="http"),
        period_seconds=period_seconds,
        timeout_seconds=2,
        failure_threshold=failure_threshold,
    )


def make_deployment(spec: ConsumerDeploymentSpec) -> client.V1Deployment:
    config_hash = hashlib.sha256(json.dumps(spec.config()).encode()).hexdigest()
    secret = client.V1SecretEnvSource(name=CONFIG_SECRET_NAME)
    container = client.V1Container(
        name=API_NAME,
        image=spec.image,
        command=["workflow-api"],
        args=["serve", "--host", "0.0.0.0", "--port", str(API_PORT)],  # noqa: S104 - in a pod
        ports=[client.V1ContainerPort(name="http", container_port=API_PORT, protocol="TCP")],
        env_from=[client.V1EnvFromSource(secret_ref=secret)],
        resources=_requirements(spec.api_resources),
        startup_probe=_probe(period_seconds=2, failure_threshold=60),
        readiness_probe=_probe(period_seconds=5, failure_threshold=3),
        liveness_probe=_probe(period_seconds=10, failure_threshold=3),
        security_context=client.V1SecurityContext(
            run_as_non_root=True,
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=client.V1Capabilities(drop=["ALL"]),
        ),
        volume_mounts=[
            client.V1VolumeMount(name="data", mount_path=DATA_DIR),
            client.V1VolumeMount(name="tmp", mount_path="/tmp"),  # noqa: S108 - an emptyDir
        ],
    )
    claim = client.V1PersistentVolumeClaimVolumeSource(claim_name=DATA_CLAIM_NAME)
    pod = client.V1PodSpec(
        service_account_name=API_NAME,
        automount_service_account_token=True,
        enable_service_links=False,  # links to the `workflow-api` Service add WORKFLOW_API_* vars
        security_context=client.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=USER_ID,
            run_as_group=USER_ID,
            fs_group=USER_ID,  # makes the claim writable for the workflow-api
            fs_group_change_policy="OnRootMismatch",
            seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
        ),
        containers=[container],
        volumes=[
            client.V1Volume(name="data", persistent_volume_claim=claim),
            client.V1Volume(name="tmp", empty_dir=client.V1EmptyDirVolumeSource(size_limit="1Gi")),
        ],
    )
    template_metadata = client.V1ObjectMeta(
        labels=spec.labels(), annotations={CONFIG_HASH_ANNOTATION: config_hash}
    )
    deployment = client.V1DeploymentSpec(
        replicas=1,  # SQLite on a ReadWriteOnce claim: one writer; the old pod goes first
        strategy=client.V1DeploymentStrategy(type="Recreate"),
        selector=client.V1LabelSelector(match_labels=spec.selector_labels()),
        template=client.V1PodTemplateSpec(metadata=template_metadata, spec=pod),
        revision_history_limit=3,
    )
    return _object(client.V1Deployment, "apps/v1", spec, API_NAME, spec=deployment)


def make_service(spec: ConsumerDeploymentSpec) -> client.V1Service:
    port = client.V1ServicePort(name="http", port=SERVICE_PORT, target_port="http", protocol="TCP")
    service = client.V1ServiceSpec(type="ClusterIP", selector=spec.selector_labels(), ports=[port])
    return _object(client.V1Service, "v1", spec, API_NAME, spec=service)


def make_ingress(spec: ConsumerDeploymentSpec) -> client.V1Ingress:
    route = spec.ingress
    port = client.V1ServiceBackendPort(name="http")
    backend = client.V1IngressBackend(
        service=client.V1IngressServiceBackend(name=API_NAME, port=port)
    )
    path = client.V1HTTPIngressPath(
        path="/" if route.host else route.path_prefix, path_type="Prefix", backend=backend
    )
    rule = client.V1IngressRule(host=route.host, http=client.V1HTTPIngressRuleValue(paths=[path]))
    tls = None
    if route.tls_secret:
        hosts = [route.host] if route.host else None
        tls = [client.V1IngressTLS(hosts=hosts, secret_name=route.tls_secret)]
    ingress = client.V1IngressSpec(ingress_class_name=route.class_name, rules=[rule], tls=tls)
    annotations = dict(route.annotations) or None
    return _object(
        client.V1Ingress,
        "networking.k8s.io/v1",
        spec,
        API_NAME,
        annotations=annotations,
        spec=ingress,
    )


def _namespace_peer(name: str) -> client.V1NetworkPolicyPeer:
    selector = client.V1LabelSelector(match_labels={"kubernetes.io/metadata.name": name})
    return client.V1NetworkPolicyPeer(namespace_selector=selector)


def _ip_peers(cidrs: tuple[str, ...]) -> list[client.V1NetworkPolicyPeer]:
    return [client.V1NetworkPolicyPeer(ip_block=client.V1IPBlock(cidr=cidr)) for cidr in cidrs]


def _tcp(*ports: int) -> list[client.V1NetworkPolicyPort]:
    return [client.V1NetworkPolicyPort(protocol="TCP", port=port) for port in ports]


def _api_egress(
    spec: ConsumerDeploymentSpec, base: list[client.V1NetworkPolicyEgressRule]
) -> client.V1NetworkPolicySpec:
    """DNS and storage (`base`, as for jobs), the provisioner, the API server, the allow-listed
    networks, and the public internet when `internet` is on."""
    egress = spec.api_egress
    rules = [
        *base,
        client.V1NetworkPolicyEgressRule(
            to=[_namespace_peer(spec.kubernetes.provisioner_namespace)],
            ports=_tcp(egress.provisioner_port),
        ),
    ]
    if egress.api_server_cidrs:
        rules.append(
            client.V1NetworkPolicyEgressRule(
                to=_ip_peers(egress.api_server_cidrs), ports=_tcp(egress.api_server_port)
            )
        )
    if egress.allow_cidrs:
        rules.append(client.V1NetworkPolicyEgressRule(to=_ip_peers(egress.allow_cidrs)))
    if egress.internet:
        public = [
            client.V1IPBlock(cidr="0.0.0.0/0", _except=list(NON_PUBLIC_V4)),
            client.V1IPBlock(cidr="::/0", _except=list(NON_PUBLIC_V6)),
        ]
        rules.append(
            client.V1NetworkPolicyEgressRule(
                to=[client.V1NetworkPolicyPeer(ip_block=block) for block in public],
                ports=_tcp(*egress.internet_ports),
            )
        )
    return client.V1NetworkPolicySpec(
        pod_selector=client.V1LabelSelector(match_labels=spec.selector_labels()),
        policy_types=["Egress"],
        egress=rules,
    )


def make_network_policies(spec: ConsumerDeploymentSpec) -> list[client.V1NetworkPolicy]:
    """No pod is reachable, except the API from the ingress controller's and the provisioner's
    namespaces; job pods reach only DNS and the storage endpoints; the API pod reaches what
    `_api_egress` lists."""
    deny_ingress = client.V1NetworkPolicySpec(
        pod_selector=client.V1LabelSelector(), policy_types=["Ingress"]
    )
    callers = [
        _namespace_peer(spec.kubernetes.ingress_namespace),
        _namespace_peer(spec.kubernetes.provisioner_namespace),
    ]
    api_port = client.V1NetworkPolicyPort(protocol="TCP", port=API_PORT)
    api_ingress = client.V1NetworkPolicySpec(
        pod_selector=client.V1LabelSelector(match_labels=spec.selector_labels()),
        policy_types=["Ingress"],
        ingress=[client.V1NetworkPolicyIngressRule(_from=callers, ports=[api_port])],
    )
    dns_ports = [client.V1NetworkPolicyPort(protocol=p, port=53) for p in ("UDP", "TCP")]
    egress = [
        client.V1NetworkPolicyEgressRule(to=[_namespace_peer("kube-system")], ports=dns_ports)
    ]
    if spec.kubernetes.storage_egress_cidrs:
        blocks = [client.V1IPBlock(cidr=cidr) for cidr in spec.kubernetes.storage_egress_cidrs]
        storage_port = client.V1NetworkPolicyPort(protocol="TCP", port=spec.storage_port)
        egress.append(
            client.V1NetworkPolicyEgressRule(
                to=[client.V1NetworkPolicyPeer(ip_block=block) for block in blocks],
                ports=[storage_port],
            )
        )
    job_egress = client.V1NetworkPolicySpec(
        pod_selector=client.V1LabelSelector(match_labels={JOB_LABEL_KEY: JOB_LABEL_VALUE}),
        policy_types=["Egress"],
        egress=egress,
    )
    policies = (
        ("default-deny-ingress", deny_ingress),
        ("allow-api-ingress", api_ingress),
        ("job-egress", job_egress),
        ("api-egress", _api_egress(spec, egress)),
    )
    return [
        _object(
            client.V1NetworkPolicy,
            "networking.k8s.io/v1",
            spec,
            name,
            component="consumer",
            spec=body,
        )
        for name, body in policies
    ]


def make_resource_quota(spec: ConsumerDeploymentSpec) -> client.V1ResourceQuota:
    quota = spec.quota
    hard = {
        "requests.cpu": quota.cpu,
        "limits.cpu": quota.cpu,
        "requests.memory": quota.memory,
        "limits.memory": quota.memory,
        "requests.nvidia.com/gpu": str(quota.gpu),  # always there: absent means unlimited
        "count/jobs.batch": str(quota.max_jobs),
        "pods": str(quota.max_pods),
    }
    body = client.V1ResourceQuotaSpec(hard=hard)
    return _object(client.V1ResourceQuota, "v1", spec, QUOTA_NAME, component="consumer", spec=body)


def make_limit_range(spec: ConsumerDeploymentSpec) -> client.V1LimitRange:
    """Defaults for containers that declare no resources, so the quota admits and counts them."""
    defaults = _requirements(spec.container_defaults)
    item = client.V1LimitRangeItem(
        type="Container", default=defaults.limits, default_request=defaults.requests
    )
    body = client.V1LimitRangeSpec(limits=[item])
    return _object(
        client.V1LimitRange, "v1", spec, LIMIT_RANGE_NAME, component="consumer", spec=body
    )


def make_consumer_objects(spec: ConsumerDeploymentSpec) -> list[object]:
    """Everything of one consumer, in apply order (the namespace first)."""
    return [
        make_namespace(spec),
        make_resource_quota(spec),
        make_limit_range(spec),
        *make_network_policies(spec),
        make_service_account(spec),
        make_job_service_account(spec),
        make_role_binding(spec),
        make_config_secret(spec),
        make_data_volume_claim(spec),
        make_service(spec),
        make_deployment(spec),
        make_ingress(spec),
    ]
