"""The services of one provisioner, built once by the app's lifespan."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine

from provisioner.deployers.base import Deployer
from provisioner.deployers.local.deployer import LocalDeployer
from provisioner.deployers.local.sandbox import LocalSandbox
from provisioner.edc.callbacks import CallbackClient
from provisioner.edc.handover import Handover
from provisioner.edc.intake import Intake
from provisioner.edc.management import ManagementClient, ManagementError
from provisioner.edc.offering import OfferTarget
from provisioner.edc.publisher import OfferingClient, StartupPublisher
from provisioner.grants.models import make_engine
from provisioner.metrics import Metrics
from provisioner.reconciler.grant_steps import EdcSide
from provisioner.reconciler.loop import Reconciler, ReconcilerTiming
from provisioner.settings import Settings
from provisioner.slugs import consumer_slug
from provisioner.storage.consumer import ConsumerStorage, NoConsumerStorage
from provisioner.storage.credentials import CredentialSecrets
from provisioner.tokens.issuing import TokenService
from provisioner.tokens.signing_key import SigningKey
from provisioner.workflow_apis import WorkflowApiClient
from workflow_common.private_files import private_dir
from workflow_contracts.asset import WorkflowAsset, load_catalog
from workflow_contracts.workflow_api_env import SharedSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parts:
    """What a test may put in place of the real thing; production uses the defaults."""

    wrap_deployer: Callable[[Deployer], Deployer] = lambda deployer: deployer
    slug_of: Callable[[str], str] = consumer_slug


@dataclass
class Services:
    settings: Settings
    engine: Engine
    catalog: dict[str, WorkflowAsset]
    tokens: TokenService
    metrics: Metrics
    intake: Intake
    handover: Handover
    reconciler: Reconciler
    closers: list[Callable[[], None]]
    publisher: StartupPublisher | None = None

    def close(self) -> None:
        for close in self.closers:
            close()
        self.engine.dispose()


def workflow_api_environment(settings: Settings) -> dict[str, str]:
    """The WORKFLOW_API_* settings every consumer's workflow-api shares (its storage settings
    are its own: `ConsumerStorage.ensure`)."""
    return SharedSettings(
        assets_dir=str(settings.assets_dir.resolve()),
        token_issuer=settings.token_issuer,
        jwks_url=f"{settings.base_url}/.well-known/jwks.json",
        storage=settings.storage,
        max_running_jobs=settings.max_running_jobs,
        storage_quota=settings.storage_quota,
        egress_allow_hosts=settings.egress_allow_hosts or None,  # empty: the default (none)
        egress_allow_cidrs=settings.egress_allow_cidrs or None,
    ).to_env()


def make_consumer_storage(settings: Settings, secrets: CredentialSecrets) -> ConsumerStorage:
    if settings.storage != "s3":
        return NoConsumerStorage()
    # Imported here: the minio client costs start-up time that filesystem storage does not need.
    from provisioner.storage.s3 import s3_consumer_storage  # noqa: PLC0415

    return s3_consumer_storage(
        settings.s3, secret_for=lambda slug: secrets.derive(f"storage-user:{slug}")
    )


def local_sandbox(settings: Settings) -> LocalSandbox:
    """The local deployer's sandbox, checked by running it once: a sandbox that cannot run
    stops the start-up (SandboxUnavailable); running without one is said loudly."""
    sandbox = LocalSandbox.of(settings)
    if sandbox.kind == "none":
        log.error(
            "PROVISIONER_LOCAL_SANDBOX=none: every consumer's workers run UNCONFINED, with their"
            " workflow-api's rights: a worker can read that consumer's database and keys, use"
            " the network and leave processes behind"
        )
    sandbox.check(settings.data_dir / "consumers" / "sandbox-check", settings.assets_dir)
    return sandbox


def offer_target(settings: Settings) -> OfferTarget:
    secret = settings.edc_endpoint_secret
    return OfferTarget(
        flavour=settings.edc_flavour,
        public_url=settings.base_url,
        legacy_address_type=settings.edc_legacy_address_type,
        endpoint_secret=secret.get_secret_value() if secret else None,
    )


def offering_client(settings: Settings) -> OfferingClient:
    if settings.edc_management_url is None:
        raise ValueError("publishing needs PROVISIONER_EDC_MANAGEMENT_URL")
    key = settings.edc_management_api_key
    return OfferingClient(
        str(settings.edc_management_url),
        api_key=key.get_secret_value() if key else None,
        timeout_seconds=settings.edc_timeout_seconds,
    )


def _make_deployer(settings: Settings, storage: ConsumerStorage) -> Deployer:
    def kubernetes() -> Deployer:
        # Imported here: the kubernetes package is an optional dependency.
        from provisioner.deployers.kubernetes.setup import (  # noqa: PLC0415
            make_kubernetes_deployer,
        )

        return make_kubernetes_deployer(settings, workflow_api_environment(settings), storage)

    deployers: dict[str, Callable[[], Deployer]] = {
        "local": lambda: LocalDeployer(
            root=settings.data_dir / "consumers",
            workflow_api_env=workflow_api_environment(settings),
            storage=storage,
            host=settings.local_host,
            public_host=settings.local_public_host,
            sandbox=local_sandbox(settings),
        ),
        "kubernetes": kubernetes,
    }
    return deployers[settings.deployer]()


def _transfer_state_reader(management: ManagementClient | None) -> Callable[[str], str | None]:
    def transfer_state(transfer_process_id: str) -> str | None:
        if management is None:
            return None
        try:
            return management.transfer_process(transfer_process_id).state
        except ManagementError:
            return None

    return transfer_state


def _transfer_terminator(management: ManagementClient | None) -> Callable[[str, str], None]:
    def terminate(transfer_process_id: str, reason: str) -> None:
        if management is None:
            raise ManagementError("the EDC Management API is not configured")
        management.terminate(transfer_process_id, reason)

    return terminate


def build_services(settings: Settings, parts: Parts | None = None) -> Services:
    parts = parts or Parts()
    if settings.edc_endpoint_unauthenticated:
        log.warning(
            "PROVISIONER_EDC_ENDPOINT_UNAUTHENTICATED: the /edc/ endpoints take requests from"
            " anyone who can reach them; EDC's Management API is the only check left."
            " Set PROVISIONER_EDC_ENDPOINT_SECRET for production"
        )
    private_dir(settings.data_dir)
    engine = make_engine(settings.resolved_database_url)
    catalog = load_catalog(settings.assets_dir)
    key_file = settings.signing_key_file or settings.data_dir / "signing-key.pem"
    tokens = TokenService(
        SigningKey.load_or_create(key_file),
        issuer=settings.token_issuer,
        max_lifetime_seconds=settings.token_max_lifetime_seconds,
    )
    metrics = Metrics()
    secret = settings.edc_management_api_key
    management = (
        ManagementClient(
            str(settings.edc_management_url),
            api_key=secret.get_secret_value() if secret else None,
            timeout_seconds=settings.edc_timeout_seconds,
        )
        if settings.edc_management_url
        else None
    )
    callback_key = settings.edc_callback_api_key
    callbacks = CallbackClient(
        api_key=callback_key.get_secret_value() if callback_key else None,
        timeout_seconds=settings.edc_timeout_seconds,
        management_url=str(settings.edc_management_url) if settings.edc_management_url else None,
        management_api_key=secret.get_secret_value() if secret else None,
    )
    workflow_apis = WorkflowApiClient(tokens)
    secrets = CredentialSecrets.load_or_create(settings.data_dir / "credentials.key")
    handover = Handover(
        engine=engine,
        tokens=tokens,
        secrets=secrets,
        base_url=settings.base_url,
        dataplane_address=settings.dataplane_address,
    )
    deadline = timedelta(seconds=settings.callback_deadline_seconds)
    reconciler = Reconciler(
        engine=engine,
        deployer=parts.wrap_deployer(
            _make_deployer(settings, make_consumer_storage(settings, secrets))
        ),
        workflow_apis=workflow_apis,
        edc=EdcSide(
            callbacks=callbacks,
            build_callback=handover.callback,
            transfer_state=_transfer_state_reader(management),
            terminate_transfer=_transfer_terminator(management),
        ),
        metrics=metrics,
        timing=ReconcilerTiming(
            interval=timedelta(seconds=settings.reconcile_interval_seconds),
            supervise_every=timedelta(seconds=settings.supervise_interval_seconds),
            grace=timedelta(seconds=settings.expiry_grace_seconds),
            callback_deadline=deadline,
            callback_delay=timedelta(seconds=settings.callback_delay_seconds),
        ),
        slug_of=parts.slug_of,
    )
    intake = Intake(
        engine=engine,
        management=management,
        catalog=catalog,
        metrics=metrics,
        callback_deadline=deadline,
        wake=reconciler.wake,
        slug_of=parts.slug_of,
    )
    closers = [callbacks.close, workflow_apis.close]
    if management is not None:
        closers.append(management.close)
    publisher = None
    if settings.edc_publish_on_startup:
        client = offering_client(settings)
        publisher = StartupPublisher(client, catalog, offer_target(settings))
        closers[:0] = [publisher.stop, client.close]  # the thread stops before its client
    return Services(
        settings=settings,
        engine=engine,
        catalog=catalog,
        tokens=tokens,
        metrics=metrics,
        intake=intake,
        handover=handover,
        reconciler=reconciler,
        closers=closers,
        publisher=publisher,
    )
