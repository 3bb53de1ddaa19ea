"""The services of one workflow-api instance, built once by the app's lifespan."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine

from workflow_api.assets import AssetRegistry
from workflow_api.auth import JwksSource, TokenVerifier
from workflow_api.db import make_engine
from workflow_api.execution.local import LocalJobRunner
from workflow_api.execution.manager import JobManager
from workflow_api.execution.notifications import Notifier
from workflow_api.execution.runner import JobRunner
from workflow_api.inputs import FileSource, InputResolver
from workflow_api.settings import Settings
from workflow_api.storage import base as keys
from workflow_api.storage.base import ObjectStore
from workflow_api.storage.factory import make_store
from workflow_api.uploads import QuotaLedger, UploadService, fetch_text
from workflow_contracts.asset import load_catalog
from workflow_contracts.manifest import ArchiveLimits


@dataclass
class Services:
    settings: Settings
    engine: Engine
    store: ObjectStore
    assets: AssetRegistry
    uploads: UploadService
    inputs: InputResolver
    jobs: JobManager
    notifier: Notifier
    verifier: TokenVerifier


def _make_runner(settings: Settings) -> JobRunner:
    runners = {
        "local": lambda: LocalJobRunner(
            settings.data_dir / "workspaces",
            grace_seconds=settings.dismiss_grace_seconds,
            poll_seconds=settings.progress_poll_seconds,
        ),
    }
    return runners[settings.runner]()


def build_services(settings: Settings) -> Services:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    incoming = settings.data_dir / "incoming"
    shutil.rmtree(incoming, ignore_errors=True)  # partial uploads of an earlier run
    engine = make_engine(settings.resolved_database_url)
    store = make_store(settings)
    store.prepare()
    catalog = load_catalog(settings.assets_dir)
    assets = AssetRegistry(catalog, engine)
    ttl = timedelta(seconds=settings.signed_url_ttl_seconds)
    uploads = UploadService(
        engine=engine,
        store=store,
        incoming_dir=incoming,
        max_size=settings.max_upload_size,
        ledger=QuotaLedger(engine, settings.storage_quota),
    )

    def read_text(source: FileSource, limit: int) -> str:
        if source.upload_id is not None:
            url = store.signed_url("GET", keys.upload_key(source.upload_id), ttl)
        else:
            assert source.url is not None
            url = source.url
        return fetch_text(url, limit)

    inputs = InputResolver(
        base_url=settings.base_url,
        max_upload_size=settings.max_upload_size,
        max_env_file_size=settings.max_inline_env_file_size,
        find_upload=uploads.find,
        read_text=read_text,
    )
    notifier = Notifier(
        timeout_seconds=settings.subscriber_timeout_seconds,
        attempts=settings.subscriber_attempts,
    )
    jobs = JobManager(
        engine=engine,
        catalog=catalog.get,
        store=store,
        runner=_make_runner(settings),
        notifier=notifier,
        base_url=settings.base_url,
        max_running=settings.max_running_jobs,
        signed_url_ttl=ttl,
        archive_limits=ArchiveLimits(
            max_total_size=settings.archive_max_total_size,
            max_files=settings.archive_max_files,
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
        assets=assets,
        uploads=uploads,
        inputs=inputs,
        jobs=jobs,
        notifier=notifier,
        verifier=verifier,
    )
