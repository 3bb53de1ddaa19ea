"""One pod on the fake kubelet: its containers as local process groups, its status in the API.

See `fake_kubelet` for what is and is not simulated.

Longer than our ~300 lines on purpose: one pod's whole life (volumes, init and main containers,
status updates, log files, termination) is one state machine, read in one place.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

if TYPE_CHECKING:
    from workflow_testkit.kubernetes.fake_kubelet import FakeKubelet

log = logging.getLogger(__name__)

POLL = 0.05


class PodDeleted(Exception):
    """The pod was deleted while this step waited."""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bin_path() -> str:
    """The test interpreter's bin directory first: `data-sidecar`, `dummy-job`, `python3`."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def _group_rss(group: int) -> int:
    """Resident bytes of every process in the process group `group`."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) != group:
                continue
            total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    return total


class PodRunner:
    def __init__(self, kubelet: FakeKubelet, pod: Any, root: Path) -> None:
        self.kubelet = kubelet
        self.pod = pod
        self.namespace, self.name, self.uid = (
            pod.metadata.namespace,
            pod.metadata.name,
            pod.metadata.uid,
        )
        self.root = root
        (root / "logs").mkdir(parents=True)
        self.volumes: dict[str, Path] = {}
        self.secrets: dict[str, dict[str, bytes]] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.statuses: dict[str, dict[str, Any]] = {}
        self.phase = "Pending"
        self.start_time = _now()
        self.exit_codes: dict[str, int] = {}
        self._deleting = threading.Event()
        self._grace = 30
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"pod-{self.name}")

    # --- called by the kubelet ------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def delete(self, grace_seconds: int) -> None:
        if not self._deleting.is_set():
            self._grace = grace_seconds
            self._deleting.set()

    def kill(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

    def log_of(self, container: str) -> bytes | None:
        path = self.root / "logs" / f"{container}.log"
        return path.read_bytes() if path.exists() else None

    # --- the pod's life -------------------------------------------------------------------------

    def _containers(self) -> tuple[list[Any], list[Any]]:
        spec = self.pod.spec
        return list(spec.init_containers or []), list(spec.containers)

    def _run(self) -> None:
        init, main = self._containers()
        for container in init + main:
            self._set(container, {"waiting": {"reason": "PodInitializing"}})
        try:
            self._patch()
            self._mount_volumes()
            for container in init:
                if container.restart_policy == "Always":
                    self._start_sidecar(container)
                else:
                    exit_code = self._run_to_end(container)
                    if exit_code != 0:
                        self.phase = "Failed"
                        self._patch()
                        self._wait_deleted()
                        return
            self._patch()
            (worker,) = main
            exit_code = self._run_to_end(worker)
            self._stop_sidecars(init, self._grace_period())
            self.phase = "Succeeded" if exit_code == 0 else "Failed"
            self._patch()
            self._wait_deleted()
        except PodDeleted:
            self._terminate(init, main)
        except Exception:
            log.exception("fake kubelet: pod %s/%s broke", self.namespace, self.name)
            self.kill()

    def _grace_period(self) -> int:
        return int(self.pod.spec.termination_grace_period_seconds or 30)

    def _wait_deleted(self) -> None:
        self._deleting.wait()
        self._final_delete()

    def _check_deleted(self) -> None:
        if self._deleting.is_set():
            raise PodDeleted

    def _terminate(self, init: list[Any], main: list[Any]) -> None:
        """SIGTERM the main container, then the sidecars, within the grace period; then delete."""
        deadline = time.monotonic() + self._grace
        for container in main:
            self._stop(container, deadline)
        self._stop_sidecars(init, max(0.0, deadline - time.monotonic()))
        if self.phase not in {"Succeeded", "Failed"}:
            self.phase = "Failed"
        with contextlib.suppress(ApiException):
            self._patch()
        self._final_delete()

    def _final_delete(self) -> None:
        with contextlib.suppress(ApiException):
            self.kubelet.core.delete_namespaced_pod(
                self.name, self.namespace, grace_period_seconds=0
            )

    # --- volumes and environment ----------------------------------------------------------------

    def _mount_volumes(self) -> None:
        for volume in self.pod.spec.volumes or []:
            path = self.root / "volumes" / volume.name
            path.mkdir(parents=True)
            self.volumes[volume.name] = path
            if volume.secret is None:
                continue
            data = self._secret(volume.secret.secret_name)
            items = [(item.key, item.path) for item in volume.secret.items or []]
            for key, relative in items or [(key, key) for key in data]:
                (path / relative).write_bytes(data[key])

    def _secret(self, name: str) -> dict[str, bytes]:
        """The Secret's data; waits for it as a kubelet's volume mount does."""
        while name not in self.secrets:
            self._check_deleted()
            try:
                secret = self.kubelet.core.read_namespaced_secret(name, self.namespace)
            except ApiException as error:
                if error.status != 404:
                    raise
                time.sleep(0.1)
                continue
            self.secrets[name] = {
                key: base64.b64decode(value) for key, value in (secret.data or {}).items()
            }
        return self.secrets[name]

    def _translate(self, container: Any, text: str) -> str:
        for mount in sorted(container.volume_mounts or [], key=lambda m: -len(m.mount_path)):
            if text == mount.mount_path or text.startswith(mount.mount_path + "/"):
                return str(self.volumes[mount.name]) + text[len(mount.mount_path) :]
        return text

    def _environment(self, container: Any) -> dict[str, str]:
        env = {"PATH": bin_path(), "HOSTNAME": self.name, "LANG": "C.UTF-8"}
        for variable in container.env or []:
            if variable.value_from is not None:
                reference = variable.value_from.secret_key_ref
                value = self._secret(reference.name)[reference.key].decode()
            else:
                value = variable.value or ""
            env[variable.name] = self._translate(container, value)
        return env

    # --- containers -----------------------------------------------------------------------------

    def _pull(self, container: Any) -> None:
        """Known images are "pulled" at once; others wait in back-off until the pod goes."""
        if container.image in self.kubelet.images:
            return
        message = f'failed to pull image "{container.image}": not found'
        self._set(container, {"waiting": {"reason": "ErrImagePull", "message": message}})
        self._patch()
        time.sleep(0.5)
        self._set(container, {"waiting": {"reason": "ImagePullBackOff", "message": message}})
        self._patch()
        while True:
            self._check_deleted()
            time.sleep(POLL)

    def _launch(self, container: Any) -> subprocess.Popen[bytes]:
        self._check_deleted()
        self._pull(container)
        command = [self._translate(container, part) for part in container.command or []]
        command += [self._translate(container, part) for part in container.args or []]
        log_path = self.root / "logs" / f"{container.name}.log"
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                command,
                env=self._environment(container),
                cwd=self._translate(container, container.working_dir or "/"),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[container.name] = process
        started = _now()
        self._set(container, {"running": {"startedAt": started}}, started=True)
        return process

    def _run_to_end(self, container: Any) -> int:
        process = self._launch(container)
        self._patch()
        limit = (container.resources.limits or {}).get("memory") if container.resources else None
        memory = int(parse_quantity(limit)) if limit else None
        reason = None
        while process.poll() is None:
            if self._deleting.is_set():
                raise PodDeleted
            if memory is not None and _group_rss(process.pid) > memory:
                os.killpg(process.pid, signal.SIGKILL)
                reason = "OOMKilled"
            time.sleep(POLL)
        return self._ended(container, process, reason)

    def _ended(self, container: Any, process: subprocess.Popen[bytes], reason: str | None) -> int:
        code = process.returncode
        exit_code = code if code >= 0 else 128 - code
        started = self.statuses[container.name]["state"].get("running", {}).get("startedAt")
        terminated = {
            "exitCode": exit_code,
            "reason": reason or ("Completed" if exit_code == 0 else "Error"),
            "startedAt": started or _now(),
            "finishedAt": _now(),
        }
        self._set(container, {"terminated": terminated}, started=False)
        self.exit_codes[container.name] = exit_code
        self._patch()
        return exit_code

    def _start_sidecar(self, container: Any) -> None:
        self._launch(container)
        probe = container.startup_probe
        if probe is not None and probe._exec is not None:
            command = [self._translate(container, part) for part in probe._exec.command]
            for _ in range(probe.failure_threshold or 3):
                self._check_deleted()
                done = subprocess.run(
                    command, env=self._environment(container), check=False, timeout=30
                )
                if done.returncode == 0:
                    break
                time.sleep(probe.period_seconds or 10)
            else:
                raise RuntimeError(f"the startup probe of {container.name} never passed")
        self.statuses[container.name]["ready"] = True
        self._patch()

    def _stop(self, container: Any, deadline: float) -> None:
        process = self.processes.get(container.name)
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(POLL)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self._ended(container, process, None)

    def _stop_sidecars(self, init: list[Any], grace: float) -> None:
        deadline = time.monotonic() + grace
        for container in reversed(init):
            if container.restart_policy == "Always":
                self._stop(container, deadline)

    # --- status ---------------------------------------------------------------------------------

    def _set(self, container: Any, state: dict[str, Any], *, started: bool = False) -> None:
        self.statuses[container.name] = {
            "name": container.name,
            "image": container.image,
            "imageID": "",
            "containerID": f"fake://{self.uid}/{container.name}",
            "ready": "running" in state and container.restart_policy != "Always",
            "restartCount": 0,
            "started": started,
            "state": state,
        }

    def _initialized(self, init: list[Any]) -> bool:
        """Every init container done, every sidecar started."""
        for container in init:
            status = self.statuses[container.name]
            if container.restart_policy == "Always":
                if not status["started"] and "terminated" not in status["state"]:
                    return False
            elif self.exit_codes.get(container.name) != 0:
                return False
        return True

    def _patch(self) -> None:
        init, main = self._containers()
        running = all("running" in self.statuses[c.name]["state"] for c in main)
        now = _now()

        def condition(kind: str, value: bool) -> dict[str, str]:
            return {"type": kind, "status": str(value), "lastTransitionTime": now}

        status = {
            "phase": self.phase,
            "hostIP": "127.0.0.1",
            "startTime": self.start_time,
            "conditions": [
                condition("PodReadyToStartContainers", True),
                condition("Initialized", self._initialized(init)),
                condition("ContainersReady", running),
                condition("Ready", running),
            ],
            "initContainerStatuses": [self.statuses[c.name] for c in init],
            "containerStatuses": [self.statuses[c.name] for c in main],
        }
        self.kubelet.core.patch_namespaced_pod_status(
            self.name,
            self.namespace,
            {"status": status},
            _content_type="application/strategic-merge-patch+json",
        )
