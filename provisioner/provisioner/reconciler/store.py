"""The reconciler's reads and writes: every database session of the loop, grant and consumer
steps is opened here, one short session per call.

Grants change only by conditional updates (`save_grant`: `UPDATE … WHERE id = … AND state =
expected`; no row changed means someone else moved first), so request handlers that insert
grants or mark them revoking never lose an update to the reconciler, nor it to them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from provisioner.grants.live import is_live
from provisioner.grants.models import Consumer, ConsumerState, Grant, GrantState
from workflow_common.clock import as_utc, utcnow
from workflow_common.retry import PermanentError

DUE = [GrantState.PROVISIONING, GrantState.REVOKING]


class SlugTakenError(PermanentError):
    """Another consumer already has this consumer's slug (the names of its deployment)."""


class ReconcilerStore:
    """See the module docstring. `on_lost_race` is called when a conditional update finds the
    grant moved by someone else (the reconciler then takes another pass at once)."""

    def __init__(self, engine: Engine, *, on_lost_race: Callable[[], None]) -> None:
        self._engine = engine
        self._on_lost_race = on_lost_race

    # --- grants ----------------------------------------------------------------------------------

    def due_grants(self) -> list[Grant]:
        """Provisioning and revoking grants whose next attempt is due, oldest first."""
        with Session(self._engine) as session:
            return list(
                session.exec(
                    select(Grant)
                    .where(col(Grant.state).in_(DUE), col(Grant.next_attempt_at) <= utcnow())
                    .order_by(col(Grant.next_attempt_at))
                )
            )

    def next_moments(self) -> tuple[list[datetime], list[str]]:
        """The next grant attempt and the next contract end (where there are any), and the
        consumers that are deploying or tearing down (polled while they change)."""
        with Session(self._engine) as session:
            pending = session.exec(
                select(func.min(Grant.next_attempt_at)).where(col(Grant.state).in_(DUE))
            ).one()
            expiring = session.exec(select(func.min(Grant.expires_at)).where(is_live())).one()
            changing = session.exec(
                select(Consumer.id).where(
                    col(Consumer.state).in_([ConsumerState.DEPLOYING, ConsumerState.TEARING_DOWN])
                )
            ).all()
        moments = [as_utc(moment) for moment in (pending, expiring) if moment is not None]
        return moments, list(changing)

    def expire(self, callback_deadline: timedelta) -> int:
        """Live grants whose contract ended start revoking; how many did."""
        now = utcnow()
        with Session(self._engine) as session:
            result = session.exec(
                update(Grant)
                .where(is_live(), col(Grant.expires_at) <= now)
                .values(
                    state=GrantState.REVOKING,
                    revoke_reason="the contract expired",
                    next_attempt_at=now,
                    attempts=0,
                    callback_deadline=now + callback_deadline,
                    updated=now,
                )
            )
            session.commit()
        return int(result.rowcount)

    def save_grant(self, grant: Grant, expected: GrantState, **changes: Any) -> bool:
        """Persist `changes` if the grant is still in `expected`; False if someone moved it."""
        changes["updated"] = utcnow()
        with Session(self._engine) as session:
            result = session.exec(
                update(Grant)
                .where(col(Grant.id) == grant.id, col(Grant.state) == expected)
                .values(**changes)
            )
            session.commit()
        if result.rowcount != 1:
            self._on_lost_race()
            return False
        for name, value in changes.items():
            setattr(grant, name, value)
        return True

    def asset_still_granted(self, grant: Grant) -> bool:
        """Another live grant of the same consumer for the same asset keeps it visible."""
        with Session(self._engine) as session:
            other = session.exec(
                select(Grant.id).where(
                    Grant.consumer_id == grant.consumer_id,
                    Grant.asset_id == grant.asset_id,
                    Grant.id != grant.id,
                    is_live(),
                    col(Grant.granted_in_api).is_(True),
                )
            ).first()
        return other is not None

    def live_assets(self, consumer_id: str) -> tuple[str, ...]:
        with Session(self._engine) as session:
            assets = session.exec(
                select(Grant.asset_id).where(Grant.consumer_id == consumer_id, is_live()).distinct()
            ).all()
        return tuple(sorted(assets))

    # --- consumers -------------------------------------------------------------------------------

    def find_consumer(self, consumer_id: str) -> Consumer | None:
        with Session(self._engine) as session:
            return session.get(Consumer, consumer_id)

    def new_or_revived_consumer(self, consumer_id: str, slug: str) -> Consumer:
        """The consumer's row as `deploying`: inserted, or revived from `removed`; one in any
        other state is returned as it is. SlugTakenError if the slug is another consumer's."""
        now = utcnow()
        with Session(self._engine) as session:
            consumer = session.get(Consumer, consumer_id)
            if consumer is None:
                owner = session.exec(select(Consumer.id).where(Consumer.slug == slug)).first()
                if owner is not None:
                    raise SlugTakenError(
                        f"consumer {consumer_id!r} maps to the name {slug!r} of another consumer"
                    )
                consumer = Consumer(
                    id=consumer_id,
                    slug=slug,
                    state=ConsumerState.DEPLOYING,
                    created=now,
                    updated=now,
                )
            elif consumer.state is ConsumerState.REMOVED:
                consumer.state, consumer.detail, consumer.endpoint = (
                    ConsumerState.DEPLOYING,
                    {},
                    None,
                )
            else:
                return consumer
            consumer.deploy_started, consumer.idle_since, consumer.updated = now, None, now
            session.add(consumer)
            try:
                session.commit()
            except IntegrityError as error:  # a concurrent insert took the slug (or the id)
                raise SlugTakenError(
                    f"consumer {consumer_id!r}: its name {slug!r} is already taken"
                ) from error
            session.refresh(consumer)
            return consumer

    def update_consumer(self, consumer: Consumer, **changes: Any) -> Consumer:
        with Session(self._engine) as session:
            stored = session.get(Consumer, consumer.id)
            assert stored is not None
            for name, value in {**changes, "updated": utcnow()}.items():
                setattr(stored, name, value)
            session.add(stored)
            session.commit()
            session.refresh(stored)
            return stored

    def consumers_to_look_after(self) -> tuple[list[Consumer], dict[str, int]]:
        """Every consumer not removed, and per consumer its grants still counting (live or
        revoking)."""
        with Session(self._engine) as session:
            consumers = list(
                session.exec(select(Consumer).where(Consumer.state != ConsumerState.REMOVED))
            )
            counting = dict(
                session.exec(
                    select(Grant.consumer_id, func.count())
                    .where(is_live() | (col(Grant.state) == GrantState.REVOKING))
                    .group_by(Grant.consumer_id)
                ).all()
            )
        return consumers, counting

    def counts(self) -> tuple[int, dict[str, int]]:
        """Consumers not removed, and grants per state (for the gauges)."""
        with Session(self._engine) as session:
            active = session.exec(
                select(func.count()).where(Consumer.state != ConsumerState.REMOVED)
            ).one()
            by_state = dict(
                session.exec(select(Grant.state, func.count()).group_by(Grant.state)).all()
            )
        return int(active), by_state
