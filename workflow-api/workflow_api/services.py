"""The services of one workflow-api instance, built once by the app's lifespan."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine

from data_sidecar.egress import Resolver, system_resolver
from workflow_api.assets import AssetRegistry
from workflow_api.auth import JwksSource, TokenVerifier
from workflow_api.db import make_engine
from workflow_api.execution.env_files import RemoteEnvFiles
from workflow_api.execution.job_inputs import JobInputs
from workflow_api.execution.job_storage import JobStorage
from workflow_api.execution.local.runner import LocalJobRunner
from workflow_api.execution.local.workers import WorkerLauncher
from workflow_api.execution.manager import JobManager
from workflow_api.execution.manifests import ManifestBuilder
from workflow_api.execution.notifications import Notifier
from workflow_api.execution.runner import JobRunner
from workflow_api.inputs import FileSource, InputResolver
from workflow_api.quota import QuotaLedger
from workflow_api.settings import Settings
from workflow_api.storage import base as keys
from workflow_api.storage.base import ObjectStore
from workflow_api.storage.factory import make_store
from workflow_api.uploads import UploadService, fetch_text
from workflow_common.private_files import private_dir
from workflow_common.sandbox import BubblewrapPolicy
from workflow_contracts.asset import load_catalog
from workflow_contracts.manifest import ArchiveLimits

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    engine: Engine
    store: ObjectStore
    ledger: QuotaLedger
    assets: AssetRegistry
    uploads: UploadService
    inputs: InputResolver
    jobs: JobManager
    notifier: Notifier
    verifier: TokenVerifier


def _make_runner(
    settings: Settings, store: ObjectStore, resolver: Resolver = system_resolver
) -> JobRunner:
    runners: dict[str, Callable[[], JobRunner]] = {
        "local": lambda: LocalJobRunner(
            settings.data_dir / "workspaces",
            grace_seconds=settings.dismiss_grace_seconds,
            poll_seconds=settings.progress_poll_seconds,
            max_log_size=settings.max_job_log_size,
            resolver=resolver,
            launcher=_make_worker_launcher(settings),
        ),
        "kubernetes": lambda: _make_kubernetes_runner(settings, store),
    }
    return runners[settings.runner]()


def _make_worker_launcher(settings: Settings) -> WorkerLauncher:
    """What starts the local runner's worker processes: inside the bubblewrap sandbox, which is
    checked here by running it once (a broken one stops the start-up), or unconfined when
    `WORKFLOW_API_SANDBOX=none`."""
    if settings.sandbox == "none":
        log.error(
            "WORKFLOW_API_SANDBOX=none: workers run unconfined with this API's rights"
            " (they can read its database, keys and every file it can)"
        )
        return WorkerLauncher(None, max_processes=settings.sandbox_max_processes)
    policy = BubblewrapPolicy.prepare(
        data_dir=settings.data_dir,
        assets_dir=settings.assets_dir,
        extra_read_only=settings.sandbox_read_only_paths,
        worker_uid=settings.sandbox_uid,
    )
    policy.probe()
    # Workspaces and logs are the API's until a job's workspace is handed to its uid.
    for directory in (settings.data_dir, settings.data_dir / "workspaces"):
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
    return WorkerLauncher(policy, max_processes=settings.sandbox_max_processes)


def _make_kubernetes_runner(settings: Settings, store: ObjectStore) -> JobRunner:
    """Imported here: the `kubernetes` client is an optional dependency of this runner only."""
    from workflow_api.execution.kubernetes.objects import JobTemplate, Toleration  # noqa: PLC0415
    from workflow_api.execution.kubernetes.runner import KubernetesJobRunner  # noqa: PLC0415
    from workflow_common.kubernetes import (  # noqa: PLC0415
        ClusterApi,
        connect,
        default_namespace,
    )

    assert settings.kubernetes_sidecar_image is not None  # checked by Settings
    template = JobTemplate(
        sidecar_image=settings.kubernetes_sidecar_image,
        service_account=settings.kubernetes_job_service_account,
        ttl_seconds_after_finished=settings.kubernetes_ttl_seconds_after_finished,
        node_selector=dict(settings.kubernetes_node_selector),
        tolerations=tuple(
            Toleration(**item.model_dump()) for item in settings.kubernetes_tolerations
        ),
        image_pull_policy=settings.kubernetes_image_pull_policy,
        push_out_grace_seconds=settings.kubernetes_push_out_grace_seconds,
        user_id=settings.kubernetes_job_user_id,
        sidecar_cpu=settings.kubernetes_sidecar_cpu,
        sidecar_memory=settings.kubernetes_sidecar_memory,
    )
    api = ClusterApi(
        connect(settings.kubernetes_kubeconfig),
        settings.kubernetes_namespace or default_namespace("WORKFLOW_API_KUBERNETES_NAMESPACE"),
        settings.kubernetes_request_timeout_seconds,
    )
    return KubernetesJobRunner(
        api,
        store,
        template,
        log_dir=settings.data_dir / "job-logs",
        poll_seconds=settings.kubernetes_poll_seconds,
        dismiss_grace_seconds=settings.dismiss_grace_seconds,
    )


def build_services(settings: Settings, resolver: Resolver = system_resolver) -> Services:
    """`resolver` answers for the egress policy (tests give a hosts table; default: the system)."""
    private_dir(settings.data_dir)
    incoming = settings.data_dir / "incoming"
    shutil.rmtree(incoming, ignore_errors=True)  # partial uploads of an earlier run
    engine = make_engine(settings.resolved_database_url)
    store = make_store(settings)
    store.prepare()
    catalog = load_catalog(settings.assets_dir)
    assets = AssetRegistry(catalog, engine)
    ttl = timedelta(seconds=settings.signed_url_ttl_seconds)
    ledger = QuotaLedger(engine, settings.storage_quota)
    ledger.adopt_earlier_counts()
    uploads = UploadService(
        engine=engine,
        store=store,
        incoming_dir=incoming,
        max_size=settings.max_upload_size,
        ledger=ledger,
    )

    def read_text(source: FileSource, limit: int) -> str:
        """An uploaded env-file, from this API's own storage (remote ones are read at launch)."""
        assert source.upload_id is not None
        return fetch_text(store.signed_url("GET", keys.upload_key(source.upload_id), ttl), limit)

    egress = settings.egress_policy()

    inputs = InputResolver(
        base_url=settings.base_url,
        max_upload_size=settings.max_upload_size,
        max_env_file_size=settings.max_inline_env_file_size,
        find_upload=uploads.find,
        read_text=read_text,
        egress=egress,
    )
    notifier = Notifier(
        timeout_seconds=settings.subscriber_timeout_seconds,
        attempts=settings.subscriber_attempts,
        policy=egress,
        resolver=resolver,
    )
    storage = JobStorage(ledger, store)
    jobs = JobManager(
        engine=engine,
        catalog=catalog.get,
        store=store,
        storage=storage,
        runner=_make_runner(settings, store, resolver),
        notifier=notifier,
        base_url=settings.base_url,
        max_running=settings.max_running_jobs,
        manifests=ManifestBuilder(
            store=store,
            storage=storage,
            ttl=ttl,
            margin=timedelta(seconds=settings.kubernetes_push_out_grace_seconds + 900),
            archive_limits=ArchiveLimits(
                max_total_size=settings.archive_max_total_size,
                max_files=settings.archive_max_files,
            ),
            max_log_size=settings.max_job_log_size,
            egress_rules=egress.rules(settings.egress_input_deadline_seconds),
        ),
        inputs=JobInputs(
            store,
            storage,
            RemoteEnvFiles(egress, settings.egress_env_file_deadline_seconds, resolver),
        ),
    )
    keys_source = JwksSource(
        file=settings.jwks_file,
        url=str(settings.jwks_url) if settings.jwks_url else None,
        cache_seconds=settings.jwks_cache_seconds,
    )
    verifier = TokenVerifier(
        keys_source,
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        consumer_id=settings.consumer_id,
    )
    return Services(
        settings=settings,
        engine=engine,
        store=store,
        ledger=ledger,
        assets=assets,
        uploads=uploads,
        inputs=inputs,
        jobs=jobs,
        notifier=notifier,
        verifier=verifier,
    )
