"""Provisioning latency and teardown time of the provisioner on the local deployer.

Everything runs in this process except the workflow-apis: the stand-in EDC and a real provisioner
(the test kit's `workflow_testkit.edc_standin`, `workflow_testkit.provisioner`) serve on loopback
in threads; the provisioner starts one `python -m workflow_api serve` process per consumer, exactly
as in production.

Longer than our ~300 lines on purpose: one script a reader runs as a whole, each measured phase
next to its baseline from the same run (the shared machinery lives in `harness.py` and the kit).

    baseline   a bare `python -m workflow_api serve`, with the environment the deployer gives a
               consumer: Popen → GET /conformance answers 200 (polled every 10 ms through one
               client), and SIGTERM → exit; one sample right before each new-consumer sample
    spare      the deployer's warm spare reproduced: `serve --settings-from-stdin` left to finish
               its imports, then a consumer's assignment → GET /conformance answers 200
    new        EDC's legacy provision request for a consumer without a workflow-api → EDC
               accepts the provisioner's provision callback (204): the workflow-api is started;
               the deployer's spare (if any) has done its imports before each sample
    burst      new consumers whose requests come at once (only the first finds a warm spare)
    existing   the same for the 2nd, 3rd, ... contract of a consumer whose workflow-api runs
               (assets taken in turn from the catalog)
    teardown   the transfer TERMINATED, EDC's deprovision request (the consumer's only grant) →
               its workflow-api process is gone and its data directory deleted (polled every 5 ms)

Targets (p50): new < 1500 ms, existing < 100 ms. Each lease in --leases gets a fresh world and a
fresh provisioner: `World.lease_seconds` is how long the stand-in keeps the transfer leased after
answering our request (callbacks meanwhile get 409, which the provisioner retries); a real EDC's
lease ends when it has persisted the new state, so 0.02 s is the closer model. Where the time goes
is read from the provisioner's own calls, timed by wrappers set on the running instances (the
package is not modified): reconciler passes, process start, health probes, the grant PUT, callbacks
sent, EDC's answers, and the lookups after a 409. The provisioner runs with the package defaults
unless --callback-delay, --reconcile-interval or --supervise-interval say otherwise.

    .venv/bin/python bench/provisioning.py [--new 10] [--existing 30] [--teardowns 10]
        [--leases 0.1 0.02] [--callback-delay SECONDS] [--bursts 1] [--name provisioning]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import itertools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness import cpu_seconds, load_note, percentile, print_table, write_results

from provisioner.deployers.base import ConsumerSpec
from provisioner.deployers.local import deployer as local_deployer
from provisioner.deployers.local.deployer import ProcessIdentity, consumer_environment
from provisioner.deployers.local.sandbox import LocalSandbox
from provisioner.reconciler import loop as reconciler_module
from provisioner.services import workflow_api_environment
from provisioner.settings import Settings
from provisioner.slugs import consumer_slug
from provisioner.tokens.issuing import workflow_api_audience
from workflow_testkit.edc_standin.driver import Driver
from workflow_testkit.edc_standin.entities import Exchange
from workflow_testkit.edc_standin.fixture import serve_in_thread
from workflow_testkit.edc_standin.model import World
from workflow_testkit.edc_standin.server import create_app as create_edc_app
from workflow_testkit.polling import poll
from workflow_testkit.ports import free_port
from workflow_testkit.provisioner import (
    RunningProvisioner,
    remove_leftover_deployments,
    start_provisioner,
)
from workflow_testkit.provisioner_admin import FINAL_GRANT_STATES

TARGETS_MS = {"new": 1500.0, "existing": 100.0}
SAMPLE_TIMEOUT = 60.0
COUNTED = (
    "reconciler_passes",
    "health_probes",
    "state_lookups",
    "provisioner_cpu_ms",
    "workflow_api_cpu_ms",
)
BASELINE_POLL = 0.01
TEARDOWN_POLL = 0.005
log = logging.getLogger("bench.provisioning")


# --- what the provisioner does, when --------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    moment: float  # time.monotonic()
    label: str
    detail: str = ""


@dataclass
class Recorder:
    """Events from wrappers around methods of the running provisioner's service instances."""

    events: list[Event] = field(default_factory=list)
    processes: dict[str, ProcessIdentity] = field(default_factory=dict)  # consumer id -> process
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, label: str, detail: str = "") -> None:
        with self.lock:
            self.events.append(Event(time.monotonic(), label, detail))

    def since(self, start: float) -> list[Event]:
        with self.lock:
            return [event for event in self.events if event.moment >= start]

    def wrap(
        self,
        owner: object,
        name: str,
        label: str,
        describe: Callable[[Any, tuple[Any, ...]], str] | None = None,
    ) -> None:
        """Replace `owner.name` by a wrapper noting "<label> begin" and "<label> end"/"failed"."""
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.note(f"{label} begin")
            try:
                result = original(*args, **kwargs)
            except Exception as error:
                self.note(f"{label} failed", type(error).__name__)
                raise
            self.note(f"{label} end", describe(result, args) if describe else "")
            return result

        setattr(owner, name, wrapper)


def instrument(provisioner: RunningProvisioner, world: World, recorder: Recorder) -> None:
    reconciler = provisioner.services.reconciler
    deployer: Any = reconciler._deployer
    recorder.wrap(reconciler, "run_once", "pass")
    recorder.wrap(provisioner.services.intake, "verify", "verify")
    recorder.wrap(provisioner.services.intake, "_insert", "insert")
    grant_steps: Any = reconciler._grants
    edc_side = grant_steps._edc  # frozen: the wrapped lookup goes into a copy
    lookup = types.SimpleNamespace(transfer_state=edc_side.transfer_state)
    recorder.wrap(lookup, "transfer_state", "state lookup", lambda result, _: str(result))
    grant_steps._edc = dataclasses.replace(edc_side, transfer_state=lookup.transfer_state)
    recorder.wrap(deployer, "_start", "spawn", functools.partial(_spawned, recorder))
    recorder.wrap(deployer, "_healthy", "probe", lambda healthy, _: "ok" if healthy else "no")
    recorder.wrap(deployer, "remove", "remove")
    if hasattr(deployer, "_assign_spare"):  # the warm spare (b8c361d)
        recorder.wrap(deployer, "_assign_spare", "spare", lambda spare, _: "yes" if spare else "no")
    recorder.wrap(reconciler._apis, "grant", "grant PUT")
    recorder.wrap(reconciler._apis, "revoke", "grant DELETE")
    recorder.wrap(reconciler._apis, "purge", "purge")
    recorder.wrap(reconciler._callbacks, "post", "callback")
    original_record = world.record

    def record(exchange: Exchange) -> None:
        original_record(exchange)
        if exchange.channel == "callback":
            detail = f"{exchange.kind} {exchange.entity_id} {exchange.status}"
            recorder.note("EDC answered callback", detail)

    world.record = record  # type: ignore[method-assign]


def _spawned(recorder: Recorder, status: Any, args: tuple[Any, ...]) -> str:
    spec: ConsumerSpec = args[0]
    pid, ticks = status.detail.get("pid"), status.detail.get("start_ticks")
    if pid:
        recorder.processes[spec.consumer_id] = ProcessIdentity(pid, ticks or 0)
    return f"pid {pid}"


def observe_driver(driver: Driver, recorder: Recorder) -> None:
    original = driver._post

    def post(url: str, body: dict[str, Any]) -> tuple[int | None, str | None]:
        answer = original(url, body)
        recorder.note("request answered", str(answer[0]))
        return answer

    driver._post = post  # type: ignore[method-assign]


# --- milestones of one sample ---------------------------------------------------------------------


def first(events: list[Event], label: str, detail: str | None = None) -> Event | None:
    return next(
        (e for e in events if e.label == label and (detail is None or detail in e.detail)), None
    )


def milestones_ms(start: float, moments: list[tuple[str, Event | float | None]]) -> dict[str, Any]:
    """Offsets from `start` in ms of the milestones found (in the given order)."""
    result: dict[str, Any] = {}
    for name, moment in moments:
        if moment is None:
            continue
        at = moment.moment if isinstance(moment, Event) else moment
        result[name] = round((at - start) * 1000, 2)
    return result


def callback_attempts(events: list[Event], transfer_process_id: str, kind: str) -> list[str]:
    return [
        e.detail.rsplit(" ", 1)[1]
        for e in events
        if e.label == "EDC answered callback"
        and e.detail.startswith(f"{kind} {transfer_process_id} ")
    ]


def provision_breakdown(
    events: list[Event], start: float, transfer_process_id: str, accepted: float
) -> dict[str, Any]:
    events = [e for e in events if e.moment <= accepted]
    spawned = first(events, "spawn end")
    # a ready consumer's supervision probes it, too: only probes after a start count here
    probes = [e for e in events if e.label == "probe end" and spawned and e.moment > spawned.moment]
    healthy = next((e for e in probes if e.detail == "ok"), None)
    before = [e for e in probes if healthy and e.moment < healthy.moment and e.detail == "no"]
    moments: list[tuple[str, Event | float | None]] = [
        ("verify begin", first(events, "verify begin")),
        ("verify end", first(events, "verify end")),
        ("insert end", first(events, "insert end")),
        ("request answered", first(events, "request answered")),
        ("spawn begin", first(events, "spawn begin")),
        ("spawned", spawned),
        ("last failed probe", before[-1] if before else None),
        ("healthy probe", healthy),
        ("grant PUT begin", first(events, "grant PUT begin")),
        ("grant PUT end", first(events, "grant PUT end")),
        ("first callback sent", first(events, "callback begin")),
        ("callback accepted", accepted),
    ]
    spare = first(events, "spare end")
    return {
        "milestones_ms": milestones_ms(start, moments),
        "spare_used": None if spare is None else spare.detail == "yes",
        "callback_statuses": callback_attempts(events, transfer_process_id, "provision"),
        "state_lookups": sum(e.label == "state lookup end" for e in events),
        "health_probes": len(probes),
        "reconciler_passes": sum(e.label == "pass begin" for e in events),
    }


def teardown_breakdown(
    events: list[Event], start: float, gone: float, data_gone: float
) -> dict[str, Any]:
    end = max(gone, data_gone)
    events = [e for e in events if e.moment <= end]
    moments: list[tuple[str, Event | float | None]] = [
        ("request answered", first(events, "request answered")),
        ("grant DELETE end", first(events, "grant DELETE end")),
        ("purge end", first(events, "purge end")),
        ("remove begin", first(events, "remove begin")),
        ("process gone", gone),
        ("data dir gone", data_gone),
    ]
    return {"milestones_ms": milestones_ms(start, moments)}


# --- the scenarios --------------------------------------------------------------------------------


@dataclass
class Stage:
    """One world (lease) and one provisioner, with everything needed to drive and observe them."""

    world: World
    driver: Driver
    provisioner: RunningProvisioner
    recorder: Recorder
    assets: list[str]

    gap: float  # seconds of quiet before each measured request
    idle_spare: int | None = None  # pid of the deployer's spare once seen idle

    def settle(self) -> None:
        """Wait until the deployer's spare workflow-api (if any) has done its imports: samples
        and baselines must not share the CPU with it. The burst scenario measures the rest."""
        spare = getattr(self.provisioner.services.reconciler._deployer, "_spare", None)
        if spare is not None and spare.poll() is None and spare.pid != self.idle_spare:
            wait_until_idle(spare.pid)
            self.idle_spare = spare.pid

    def provision(self, consumer_id: str, asset_id: str) -> tuple[str, dict[str, Any], float]:
        """One provision round trip; returns the transfer id, the breakdown, the latency (s)."""
        process = self.world.new_transfer(asset_id=asset_id, consumer_id=consumer_id)
        self.settle()
        time.sleep(self.gap)
        start, cpu = time.monotonic(), time.process_time()
        sent = self.driver.send_legacy_provision(
            process.id, endpoint=self.provisioner.legacy_endpoint
        )
        if sent.outcome != "accepted":
            raise RuntimeError(f"provision request not accepted: {sent}")
        self.driver.wait_for_callback(process.id, "provision", timeout=SAMPLE_TIMEOUT)
        cpu = time.process_time() - cpu
        events = self.recorder.since(start)
        accepted = next(
            e.moment
            for e in events
            if e.label == "EDC answered callback" and e.detail == f"provision {process.id} 204"
        )
        breakdown = provision_breakdown(events, start, process.id, accepted)
        breakdown["provisioner_cpu_ms"] = round(cpu * 1000, 1)  # this process: all its threads
        if first(events, "spawn end"):
            started = self.recorder.processes[consumer_id].pid
            breakdown["workflow_api_cpu_ms"] = round(cpu_seconds(started) * 1000, 1)
        return process.id, breakdown, accepted - start

    def tear_down(self, consumer_id: str, transfer_ids: list[str]) -> tuple[dict[str, Any], float]:
        """Terminate and deprovision every transfer of the consumer; wait until its process is
        gone and its data directory deleted; returns the breakdown and the time (s) from the
        last deprovision request."""
        identity = self.recorder.processes[consumer_id]
        data_dir = self.provisioner.settings.data_dir / "consumers" / consumer_slug(consumer_id)
        endpoint = self.provisioner.admin_api.consumer(consumer_id)["endpoint"]  # type: ignore[index]
        for transfer_id in transfer_ids:
            self.world.transfer_processes[transfer_id].transition("TERMINATED")
        for transfer_id in transfer_ids[:-1]:
            self.driver.send_legacy_deprovision(
                transfer_id, endpoint=self.provisioner.legacy_endpoint
            )
        for transfer_id in transfer_ids[:-1]:  # only the last grant's revocation is timed
            self.provisioner.admin_api.wait_for_grant(
                transfer_id, FINAL_GRANT_STATES, SAMPLE_TIMEOUT
            )
        time.sleep(self.gap)
        start = time.monotonic()
        answer = self.driver.send_legacy_deprovision(
            transfer_ids[-1], endpoint=self.provisioner.legacy_endpoint
        )
        if answer.status != 200:
            raise RuntimeError(f"deprovision request not accepted: {answer}")
        gone = data_gone = None
        deadline = start + SAMPLE_TIMEOUT
        while gone is None or data_gone is None:
            now = time.monotonic()
            if gone is None and not identity.exists():
                gone = now
            if data_gone is None and not data_dir.exists():
                data_gone = now
            if now > deadline:
                raise RuntimeError(f"consumer {consumer_id} not torn down in {SAMPLE_TIMEOUT} s")
            time.sleep(TEARDOWN_POLL)
        breakdown = teardown_breakdown(self.recorder.since(start), start, gone, data_gone)
        self._check_removed(consumer_id, endpoint)
        return breakdown, max(gone, data_gone) - start

    def burst(self, consumer_ids: list[str]) -> list[float]:
        """New consumers whose requests come at once (only the first finds a warm spare);
        latency of each (s), from its own request. Torn down afterwards (not timed)."""
        processes = [self.world.new_transfer(asset_id="echo", consumer_id=c) for c in consumer_ids]
        self.settle()
        time.sleep(self.gap)
        starts = []
        for process in processes:
            starts.append(time.monotonic())
            sent = self.driver.send_legacy_provision(
                process.id, endpoint=self.provisioner.legacy_endpoint
            )
            if sent.outcome != "accepted":
                raise RuntimeError(f"provision request not accepted: {sent}")
        for process in processes:
            self.driver.wait_for_callback(process.id, "provision", timeout=SAMPLE_TIMEOUT)
        accepted = {
            e.detail.split()[1]: e.moment
            for e in self.recorder.since(starts[0])
            if e.label == "EDC answered callback" and e.detail.endswith(" 204")
        }
        latencies = [accepted[p.id] - t for p, t in zip(processes, starts, strict=True)]
        for consumer_id, process in zip(consumer_ids, processes, strict=True):
            self.tear_down(consumer_id, [process.id])
        return latencies

    def _check_removed(self, consumer_id: str, endpoint: str) -> None:
        poll(
            lambda: (
                (self.provisioner.admin_api.consumer(consumer_id) or {}).get("state") == "removed"
            ),
            10,
            f"consumer {consumer_id} removed",
        )
        with contextlib.suppress(httpx.TransportError):
            httpx.get(f"{endpoint}/conformance", timeout=2)
            raise RuntimeError(f"the workflow-api of {consumer_id} at {endpoint} still answers")


def wait_until_idle(pid: int, quiet: float = 0.2, timeout: float = SAMPLE_TIMEOUT) -> float:
    """Wait until process `pid` has used no CPU for `quiet` seconds (or is gone); returns the
    moment (monotonic) its CPU time last grew."""
    last_cpu, last_change = -1.0, time.monotonic()
    deadline = last_change + timeout
    while time.monotonic() < deadline:
        try:
            cpu = cpu_seconds(pid)
        except (OSError, IndexError, ValueError):
            break
        now = time.monotonic()
        if cpu != last_cpu:
            last_cpu, last_change = cpu, now
        elif now - last_change >= quiet:
            break
        time.sleep(0.02)
    return last_change


def consumer_like(
    settings: Settings, work_dir: Path, name: str
) -> tuple[Path, int, dict[str, str]]:
    """A data directory, a port and the environment the deployer would give consumer `name`."""
    slug = consumer_slug(name)
    spec = ConsumerSpec(name, slug, workflow_api_audience(slug))
    data_dir = work_dir / "bare" / slug
    data_dir.mkdir(parents=True)
    port = free_port()
    environment = consumer_environment(
        workflow_api_environment(settings),
        spec,
        data_dir=data_dir,
        public_url=f"http://127.0.0.1:{port}",
        python=sys.executable,
        inherited=os.environ,
    )
    environment |= LocalSandbox.of(settings).environment(data_dir.parent, slug)
    return data_dir, port, environment


def wait_healthy(process: subprocess.Popen[bytes], port: int, start: float, log: Path) -> float:
    """Seconds from `start` until GET /conformance answers 200 (one client, every 10 ms)."""
    url = f"http://127.0.0.1:{port}{local_deployer.HEALTH_PATH}"
    with httpx.Client(timeout=0.5, trust_env=False) as client:  # no TLS set-up per probe
        while True:
            with contextlib.suppress(httpx.TransportError):
                if client.get(url, headers={"Connection": "close"}).status_code == 200:
                    return time.monotonic() - start
            if process.poll() is not None or time.monotonic() - start > SAMPLE_TIMEOUT:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"the bare workflow-api did not start:\n{tail}")
            time.sleep(BASELINE_POLL)


def stop_group(process: subprocess.Popen[bytes]) -> float:
    """SIGTERM its process group; seconds until it has exited (SIGKILL after the timeout)."""
    stopping = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=SAMPLE_TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return time.monotonic() - stopping


def spare_start(settings: Settings, work_dir: Path, name: str) -> tuple[float, float]:
    """A spare as the deployer pre-starts it (`serve --settings-from-stdin`): once it has done
    its imports, the assignment of a consumer's settings → healthy; and Popen → imports done
    (seconds; the latter to ±0.2 s, from its CPU time)."""
    data_dir, port, environment = consumer_like(settings, work_dir, name)
    minimal = {key: environment[key] for key in ("PATH", "HOME", "LANG")}
    command = [sys.executable, "-m", "workflow_api", "serve", "--settings-from-stdin"]
    log = data_dir / "workflow-api.log"
    start = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=work_dir,
        env=minimal,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        warm = wait_until_idle(process.pid) - start
        assignment = {
            "environment": environment,
            "host": "127.0.0.1",
            "port": port,
            "directory": str(data_dir),
            "log_file": str(log),
        }
        assert process.stdin is not None
        assigned = time.monotonic()
        process.stdin.write(json.dumps(assignment).encode() + b"\n")
        process.stdin.close()
        healthy = wait_healthy(process, port, assigned, log)
    finally:
        stop_group(process)
        shutil.rmtree(data_dir, ignore_errors=True)
    return healthy, warm


def bare_start(settings: Settings, work_dir: Path, name: str) -> tuple[float, float, float]:
    """A bare workflow-api with a consumer's environment: start → healthy, its CPU time until
    then, SIGTERM → exit (seconds)."""
    data_dir, port, environment = consumer_like(settings, work_dir, name)
    command = [sys.executable, "-m", "workflow_api", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    log = data_dir / "workflow-api.log"
    with log.open("wb") as log_file:
        start = time.monotonic()
        process = subprocess.Popen(
            command,
            cwd=data_dir,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        healthy = wait_healthy(process, port, start, log)
        cpu = cpu_seconds(process.pid)
    finally:
        stopped = stop_group(process)
        shutil.rmtree(data_dir, ignore_errors=True)
    return healthy, cpu, stopped


@dataclass
class Samples:
    baseline: list[float] = field(default_factory=list)
    baseline_stop: list[float] = field(default_factory=list)
    spare: list[float] = field(default_factory=list)
    burst: list[float] = field(default_factory=list)
    new: list[float] = field(default_factory=list)
    existing: list[float] = field(default_factory=list)
    teardown: list[float] = field(default_factory=list)
    details: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, kind: str, seconds: float, breakdown: dict[str, Any]) -> None:
        getattr(self, kind).append(seconds)
        self.details.setdefault(kind, []).append({"ms": round(seconds * 1000, 2), **breakdown})


def run_stage(stage: Stage, arguments: argparse.Namespace, work_dir: Path, tag: str) -> Samples:
    samples = Samples()
    assets = itertools.cycle(stage.assets)
    spares = hasattr(stage.provisioner.services.reconciler._deployer, "prepare")
    cycles = max(arguments.new, arguments.teardowns, arguments.baseline, arguments.spare_baseline)
    for index in range(-arguments.warmup, cycles):
        measured = index >= 0
        if index < arguments.spare_baseline and spares:
            stage.settle()
            healthy, warm = spare_start(
                stage.provisioner.settings, work_dir, f"spare-{tag}-{index + arguments.warmup}"
            )
            if measured:
                samples.add("spare", healthy, {"imports_done_ms": round(warm * 1000, 1)})
        if index < arguments.baseline:
            stage.settle()
            healthy, cpu, stopped = bare_start(
                stage.provisioner.settings, work_dir, f"bare-{tag}-{index + arguments.warmup}"
            )
            if measured:
                samples.add("baseline", healthy, {"workflow_api_cpu_ms": round(cpu * 1000, 1)})
                samples.add("baseline_stop", stopped, {})
        consumer_id = f"new-{tag}-{index + arguments.warmup}"
        transfer_id, breakdown, latency = stage.provision(consumer_id, "echo")
        if measured and index < arguments.new:
            samples.add("new", latency, breakdown)
        breakdown, seconds = stage.tear_down(consumer_id, [transfer_id])
        if measured and index < arguments.teardowns:
            samples.add("teardown", seconds, breakdown)
        progress(
            f"{tag} cycle {index + 1}/{cycles}: new {latency * 1000:.0f} ms,"
            f" teardown {seconds * 1000:.0f} ms"
        )
    for number in range(arguments.bursts):
        latencies = stage.burst([f"burst-{tag}-{number}-{i}" for i in range(arguments.burst_size)])
        for latency in latencies:
            samples.add("burst", latency, {})
        progress(f"{tag} burst {number + 1}: " + ", ".join(f"{s * 1000:.0f}" for s in latencies))
    consumer_id = f"steady-{tag}"
    transfers = [stage.provision(consumer_id, next(assets))[0]]  # its workflow-api starts
    for index in range(arguments.existing):
        transfer_id, breakdown, latency = stage.provision(consumer_id, next(assets))
        transfers.append(transfer_id)
        samples.add("existing", latency, breakdown)
        if index % 10 == 9:
            progress(f"{tag} existing {index + 1}/{arguments.existing}")
    breakdown, seconds = stage.tear_down(consumer_id, transfers)
    samples.details["teardown_of_steady_consumer"] = [
        {"grants": len(transfers), "ms": round(seconds * 1000, 2), **breakdown}
    ]
    return samples


def progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def staged(
    world: World, management_url: str, data_dir: Path, settings: dict[str, Any], gap: float
) -> Iterator[Stage]:
    """A provisioner for `world`; on exit: stopped, and whatever it deployed removed."""
    recorder = Recorder()
    provisioner = start_provisioner(data_dir, management_url, **settings)
    driver = Driver(world)
    try:
        instrument(provisioner, world, recorder)
        observe_driver(driver, recorder)
        assets = sorted(provisioner.services.catalog)
        yield Stage(world, driver, provisioner, recorder, assets, gap)
    finally:
        driver.close()
        provisioner.stop()
        remove_leftover_deployments(data_dir, provisioner.settings.resolved_database_url)
        for identity in recorder.processes.values():  # belt and braces
            if identity.exists():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(identity.pid, signal.SIGKILL)


# --- report ---------------------------------------------------------------------------------------


def stats_ms(seconds: list[float]) -> dict[str, float]:
    values = [value * 1000 for value in seconds]
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "min_ms": round(min(values), 2),
        "p50_ms": round(percentile(values, 0.5), 2),
        "p90_ms": round(percentile(values, 0.9), 2),
        "max_ms": round(max(values), 2),
    }


def phases(details: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Durations between consecutive milestones (in the order of the first sample's milestones,
    skipping those a sample lacks): p50 and max in ms."""
    order: list[str] = []
    for detail in details:
        for name in detail["milestones_ms"]:
            if name not in order:
                order.append(name)
    durations: dict[str, list[float]] = {}
    for detail in details:
        previous, at = "request sent", 0.0
        for name in order:
            if name in detail["milestones_ms"]:
                moment = detail["milestones_ms"][name]
                durations.setdefault(f"{previous} → {name}", []).append(moment - at)
                previous, at = name, moment
    return {
        step: {
            "samples": len(values),
            "p50_ms": round(percentile(values, 0.5), 2),
            "max_ms": round(max(values), 2),
        }
        for step, values in durations.items()
    }


def callback_patterns(details: list[dict[str, Any]]) -> dict[str, int]:
    patterns = Counter(",".join(detail["callback_statuses"]) for detail in details)
    return dict(patterns.most_common())


def summarise(samples: Samples) -> dict[str, Any]:
    summary: dict[str, Any] = {
        kind: stats_ms(getattr(samples, kind))
        for kind in ("baseline", "baseline_stop", "spare", "new", "burst", "existing", "teardown")
    }
    summary["phases"] = {
        kind: phases(samples.details[kind])
        for kind in ("new", "existing", "teardown")
        if samples.details.get(kind)
    }
    summary["callback_statuses"] = {
        kind: callback_patterns(samples.details[kind])
        for kind in ("new", "existing")
        if samples.details.get(kind)
    }
    summary["counts"] = {
        kind: {
            name: percentile([d[name] for d in samples.details[kind] if name in d], 0.5)
            for name in COUNTED
            if any(name in detail for detail in samples.details[kind])
        }
        for kind in ("baseline", "new", "existing")
        if samples.details.get(kind)
    }
    if samples.baseline and samples.new:
        summary["new_over_baseline_p50"] = round(
            percentile(samples.new, 0.5) / percentile(samples.baseline, 0.5), 2
        )
    if samples.spare and samples.new:
        summary["new_over_spare_p50"] = round(
            percentile(samples.new, 0.5) / percentile(samples.spare, 0.5), 2
        )
    spare_used = [d["spare_used"] for d in samples.details.get("new", []) if "spare_used" in d]
    if spare_used:
        summary["new_with_warm_spare"] = f"{sum(bool(u) for u in spare_used)}/{len(spare_used)}"
    return summary


def print_report(results: list[dict[str, Any]]) -> None:
    labels = {
        "baseline": "bare workflow-api start → healthy",
        "spare": "warm spare: assignment → healthy",
        "new": "provision, new consumer",
        "burst": "provision, new consumers in a burst",
        "existing": "provision, existing consumer",
        "teardown": "teardown (deprovision → process and data gone)",
        "baseline_stop": "bare workflow-api SIGTERM → exit",
    }
    rows = []
    for result in results:
        summary = result["summary"]
        for kind, label in labels.items():
            stats = summary[kind]
            if not stats["count"]:
                continue
            target = TARGETS_MS.get(kind)
            verdict = "" if target is None else ("ok" if stats["p50_ms"] < target else "MISSED")
            rows.append(
                [
                    f"{result['lease_seconds']:g}",
                    label,
                    stats["count"],
                    stats["min_ms"],
                    stats["p50_ms"],
                    stats["p90_ms"],
                    stats["max_ms"],
                    f"< {target:g}" if target else "",
                    verdict,
                ]
            )
    header = ["lease s", "measurement", "n", "min ms", "p50 ms", "p90 ms", "max ms", "target"]
    print_table("Provisioning (ms)", [*header, "p50"], rows)
    for result in results:
        summary = result["summary"]
        lease = f"{result['lease_seconds']:g}"
        ratio = summary.get("new_over_baseline_p50")
        if ratio is not None:
            print(f"  lease {lease} s: new / bare start (p50) = {ratio:.2f}", end="")
        ratio = summary.get("new_over_spare_p50")
        if ratio is not None:
            print(f", new / warm spare (p50) = {ratio:.2f}", end="")
        if "new_with_warm_spare" in summary:
            print(f"; a warm spare for {summary['new_with_warm_spare']} new consumers", end="")
        print()
    for result in results:
        lease = f"{result['lease_seconds']:g}"
        counts = result["summary"]["counts"].get("baseline")
        if counts:
            text = ", ".join(f"{k} {v:g}" for k, v in counts.items())
            print(f"\n  bare workflow-api, lease {lease} s, per sample (p50): {text}")
        for kind, steps in result["summary"]["phases"].items():
            rows = [[step, v["samples"], v["p50_ms"], v["max_ms"]] for step, v in steps.items()]
            print_table(
                f"Where the time goes: {kind}, lease {lease} s",
                ["step", "n", "p50 ms", "max ms"],
                rows,
            )
            patterns = result["summary"]["callback_statuses"].get(kind)
            if patterns:
                text = ", ".join(f"[{p}] x{n}" for p, n in patterns.items())
                print(f"  callback answers per sample: {text}")
            counts = result["summary"]["counts"].get(kind)
            if counts:
                print("  per sample (p50): " + ", ".join(f"{k} {v:g}" for k, v in counts.items()))


def settings_used(provisioner: RunningProvisioner) -> dict[str, Any]:
    settings = provisioner.settings
    names = [
        "callback_delay_seconds",
        "reconcile_interval_seconds",
        "supervise_interval_seconds",
        "expiry_grace_seconds",
        "callback_deadline_seconds",
        "edc_timeout_seconds",
    ]
    return {
        **{name: getattr(settings, name) for name in names},
        "reconciler.DEPLOY_POLL_seconds": reconciler_module.DEPLOY_POLL.total_seconds(),
        "reconciler.backoff_seconds(1..3)": [
            reconciler_module.backoff(n).total_seconds() for n in (1, 2, 3)
        ],
        "local.HEALTH_TIMEOUT_SECONDS": local_deployer.HEALTH_TIMEOUT_SECONDS,
        "local.POLL_SECONDS": local_deployer.POLL_SECONDS,
    }


# --- main -----------------------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    defaults = Settings.model_fields
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new", type=int, default=10, help="new-consumer samples per lease")
    parser.add_argument("--existing", type=int, default=30, help="existing-consumer samples")
    parser.add_argument("--teardowns", type=int, default=10, help="teardown samples per lease")
    parser.add_argument("--baseline", type=int, default=10, help="bare-start samples per lease")
    parser.add_argument(
        "--spare-baseline", type=int, default=5, help="warm-spare samples per lease"
    )
    parser.add_argument("--bursts", type=int, default=1, help="bursts of new consumers per lease")
    parser.add_argument("--burst-size", type=int, default=3, help="new consumers per burst")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured cycles per lease")
    parser.add_argument("--leases", type=float, nargs="+", default=[0.1, 0.02])
    parser.add_argument(
        "--callback-delay", type=float, default=defaults["callback_delay_seconds"].default
    )
    parser.add_argument(
        "--reconcile-interval", type=float, default=defaults["reconcile_interval_seconds"].default
    )
    parser.add_argument(
        "--supervise-interval", type=float, default=defaults["supervise_interval_seconds"].default
    )
    parser.add_argument(
        "--gap", type=float, default=0.1, help="seconds of quiet before each measured request"
    )
    parser.add_argument("--work-dir", type=Path, help="default: a temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--name", default="provisioning", help="bench/results/<name>.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C
    work_dir = arguments.work_dir or Path(tempfile.mkdtemp(prefix="bench-provisioning-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=work_dir / "provisioner.log",
        level=logging.INFO,
        format="%(asctime)s %(threadName)s %(levelname)s %(name)s %(message)s",
    )
    overrides = {
        "callback_delay_seconds": arguments.callback_delay,
        "reconcile_interval_seconds": arguments.reconcile_interval,
        "supervise_interval_seconds": arguments.supervise_interval,
        "callback_deadline_seconds": Settings.model_fields["callback_deadline_seconds"].default,
    }
    print(f"provisioning benchmark, {load_note()}; work dir {work_dir}", file=sys.stderr)
    results: list[dict[str, Any]] = []
    settings: dict[str, Any] = {}
    started = time.monotonic()
    slot: list[World] = [World()]
    try:
        with serve_in_thread(create_edc_app(lambda: slot[0])) as edc_url:
            for number, lease in enumerate(arguments.leases):
                slot[0] = World(
                    management_url=f"{edc_url}/management",
                    provisioning_url=f"{edc_url}/provisioning",
                    lease_seconds=lease,
                )
                data_dir = work_dir / f"provisioner-{number}"
                with staged(
                    slot[0], slot[0].management_url, data_dir, overrides, arguments.gap
                ) as stage:
                    settings = settings_used(stage.provisioner)
                    samples = run_stage(stage, arguments, work_dir, f"l{number}")
                results.append(
                    {
                        "lease_seconds": lease,
                        "summary": summarise(samples),
                        "samples": samples.details,
                    }
                )
    finally:
        if not arguments.keep and arguments.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)
    print_report(results)
    print(f"\n  provisioner settings: {settings}")
    print(f"  {load_note()}; {time.monotonic() - started:.0f} s in all")
    path = write_results(
        arguments.name,
        {
            "description": "provisioning latency and teardown time, local deployer",
            "targets_p50_ms": TARGETS_MS,
            "arguments": {k: str(v) for k, v in vars(arguments).items()},
            "provisioner_settings": settings,
            "results": results,
        },
    )
    print(f"  results: {path}")


if __name__ == "__main__":
    main()
