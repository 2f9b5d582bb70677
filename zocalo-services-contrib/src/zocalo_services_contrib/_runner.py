"""The Runner service: runs a step's command and reports how it ended.

A command may run far longer than a broker lets a consumer hold a message, so the
Runner holds none while it runs. Accepting a request acks it and sends a *lease* (a
checkpoint of the same step) in one transaction. The lease is the job's one token: it
comes back to the `runner` queue again and again, with growing delays, and whichever
Runner receives it looks at the job's state file:

- nobody has claimed the job: claim it atomically and start it (the Runner that
  accepted the request usually has, right after its commit);
- running with a fresh heartbeat: send the lease on again;
- done: send the result to `success` or `failure`, acking the lease in the same
  transaction, so the result is sent exactly once;
- running with a stale heartbeat (its Runner died): report it as failed, not rerun.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from zocalo_core import (
    Handling,
    Message,
    RecipeWrapper,
    RejectMessage,
    Service,
    ServicePlugin,
    Subscribe,
    Transaction,
)

from zocalo_services_contrib._runner_command import (
    CommandSpec,
    build_command,
    job_key,
)
from zocalo_services_contrib._runner_process import (
    DRAIN_AFTER_EXIT,
    KILL_GRACE,
    CommandResult,
    run_command,
)
from zocalo_services_contrib._runner_state import (
    DONE,
    REPORTED,
    RUNNING,
    JobStateError,
    JobStore,
    process_exists,
    running_state,
    this_host,
)
from zocalo_services_contrib._settings import RunnerSettings, runner_settings

logger = logging.getLogger(__name__)

#: The payload key that marks a message on the `runner` queue as a job's lease.
LEASE_KEY = "zocalo-runner-lease"
#: The delay of a job's first lease; later ones double up to `lease_interval`.
FIRST_LEASE_DELAY = 0.1


@dataclass(frozen=True)
class Lease:
    """A job's token: its key, the request it belongs to, and its input payload."""

    job: str
    token: str
    input: Any
    delay: float

    def payload(self) -> dict[str, Any]:
        lease = {"job": self.job, "token": self.token, "delay": self.delay}
        return {LEASE_KEY: {**lease, "input": self.input}}

    def renewed(self, lease_interval: float) -> Lease:
        delay = min(max(self.delay * 2, FIRST_LEASE_DELAY), lease_interval)
        return Lease(self.job, self.token, self.input, delay)

    @classmethod
    def from_payload(cls, payload: Any) -> Lease | None:
        if not isinstance(payload, Mapping) or LEASE_KEY not in payload:
            return None
        lease = payload[LEASE_KEY]
        try:
            job, token = str(lease["job"]), str(lease["token"])
            delay = float(lease["delay"])
            if not math.isfinite(delay) or not job or not token:
                raise ValueError("its job, token or delay is not usable")
            return cls(job, token, lease.get("input"), delay)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RejectMessage(f"the Runner lease is malformed: {exc!r}") from exc


def _lost_result(state: Mapping[str, Any]) -> CommandResult:
    heartbeat = float(state.get("heartbeat", 0.0))
    started = float(state.get("started", heartbeat))
    error = (
        f"the Runner running this command (host {state.get('host')}, pid "
        f"{state.get('pid')}) stopped sending heartbeats {time.time() - heartbeat:.0f}"
        " s ago; whether the command finished is unknown, so it is reported as "
        "failed and not run again"
    )
    return CommandResult.failed(error, max(0.0, heartbeat - started))


def result_payload(
    state: Mapping[str, Any], lease: Lease, result: CommandResult
) -> dict[str, Any]:
    """What the Runner sends to `success` or `failure`."""
    file = lease.input.get("file") if isinstance(lease.input, Mapping) else None
    return {
        "command": state.get("command"),
        "workdir": state.get("workdir"),
        "exit_code": result.exit_code,
        "duration": result.duration,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "timed_out": result.timed_out,
        "error": result.error,
        "file": file,
        "host": state.get("host"),
        "input": lease.input,
    }


class Runner(Service):
    """Runs the commands the site's `runner` block allows; see the module docstring."""

    name = "Runner"
    subscriptions = [Subscribe("runner", "on_request", handling=Handling.MANUAL)]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._jobs: dict[str, threading.Thread] = {}
        self._jobs_lock = threading.Lock()
        self._stopping = threading.Event()
        self._instance = uuid.uuid4().hex

    def on_request(self, rw: RecipeWrapper, message: Message) -> None:
        lease = Lease.from_payload(rw.payload)
        settings = runner_settings(self.site, "the Runner", "run any command")
        store = JobStore(settings.state_directory)
        if lease is None:
            self._accept(rw, message, settings, store)
        else:
            self._visit(rw, message, lease, settings, store)

    def on_stop(self) -> None:
        self._stopping.set()
        with self._jobs_lock:
            threads = list(self._jobs.values())
        if threads:
            self.log.info("stopping %d running commands", len(threads))
        deadline = time.monotonic() + 2 * KILL_GRACE + DRAIN_AFTER_EXIT + 2
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # Requests and leases.

    def _accept(
        self,
        rw: RecipeWrapper,
        message: Message,
        settings: RunnerSettings,
        store: JobStore,
    ) -> None:
        spec = build_command(rw.recipe_step.get("parameters"), rw.payload, settings)
        identity = {
            "recipe_ID": rw.recipe_id,
            "recipe_pointer": rw.recipe_pointer,
            "recipe_path": rw.recipe_path,
        }
        key = job_key(identity, spec, rw.payload)
        delay = min(FIRST_LEASE_DELAY, settings.lease_interval)
        lease = Lease(key, uuid.uuid4().hex, rw.payload, delay)
        self._commit(message, self._checkpoint(rw, lease))
        self.log.info("accepted job %s: %s in %s", key, spec.argv, spec.workdir)
        try:
            state = self._claim(store, lease, spec, settings)
            if state is not None:
                self._start(store, lease, spec, settings, state)
        except Exception:
            # Committed already: the lease will start the job, so nothing is lost.
            self.log.exception("could not start job %s now; its lease will", key)

    def _visit(
        self,
        rw: RecipeWrapper,
        message: Message,
        lease: Lease,
        settings: RunnerSettings,
        store: JobStore,
    ) -> None:
        # Whether the job runs here is read before its file, so a job that ends in
        # between is seen as done rather than as abandoned.
        local = self._is_local(lease.job)
        state = store.read(lease.job)
        if state is None:
            self._visit_unclaimed(rw, message, lease, settings, store)
        elif state.get("token") != lease.token:
            self.log.warning(
                "job %s is run for another, identical request; dropping this one",
                lease.job,
            )
            self._commit(message, None)
        elif state.get("status") == DONE:
            result = CommandResult.from_json(state["result"])
            self._report(rw, message, lease, store, state, result)
        elif state.get("status") == RUNNING:
            if self._alive(state, local, settings):
                renewed = lease.renewed(settings.lease_interval)
                self._commit(message, self._checkpoint(rw, renewed))
            else:
                self._report(rw, message, lease, store, state, _lost_result(state))
        else:
            self.log.debug("job %s was reported already", lease.job)
            self._commit(message, None)

    def _visit_unclaimed(
        self,
        rw: RecipeWrapper,
        message: Message,
        lease: Lease,
        settings: RunnerSettings,
        store: JobStore,
    ) -> None:
        # The allow list is checked again: every message that can start a command is.
        spec = build_command(rw.recipe_step.get("parameters"), lease.input, settings)
        state = self._claim(store, lease, spec, settings)
        renewed = lease.renewed(settings.lease_interval)
        try:
            self._commit(message, self._checkpoint(rw, renewed))
        except BaseException:
            if state is not None:
                store.release(lease.job)
            raise
        if state is not None:
            try:
                self._start(store, lease, spec, settings, state)
            except Exception:
                self.log.exception("could not start job %s", lease.job)

    def _report(
        self,
        rw: RecipeWrapper,
        message: Message,
        lease: Lease,
        store: JobStore,
        state: dict[str, Any],
        result: CommandResult,
    ) -> None:
        channel = "success" if result.succeeded else "failure"
        payload = result_payload(state, lease, result)
        rw.set_default_channel(channel)

        def send(transaction: Transaction) -> None:
            rw.send(payload, transaction=transaction)

        self._commit(message, send)
        level = logging.INFO if result.succeeded else logging.WARNING
        self.log.log(
            level,
            "job %s: %s ended with exit code %s after %.1f s%s",
            lease.job,
            state.get("command"),
            result.exit_code,
            result.duration,
            f" ({result.error})" if result.error else "",
        )
        try:
            store.write(lease.job, {**state, "status": REPORTED})
        except JobStateError as exc:
            self.log.warning("could not mark job %s as reported: %s", lease.job, exc)

    def _commit(
        self, message: Message, action: Callable[[Transaction], None] | None
    ) -> None:
        """Run `action` and ack `message` in one transaction."""
        transaction = self.transport.transaction_begin(message.subscription)
        try:
            if action is not None:
                action(transaction)
            self.transport.ack(message, transaction=transaction)
        except BaseException:
            self.transport.transaction_abort(transaction)
            raise
        self.transport.transaction_commit(transaction)

    @staticmethod
    def _checkpoint(rw: RecipeWrapper, lease: Lease) -> Callable[[Transaction], None]:
        def send(transaction: Transaction) -> None:
            rw.checkpoint(lease.payload(), delay=lease.delay, transaction=transaction)

        return send

    # Jobs.

    def _is_local(self, key: str) -> bool:
        with self._jobs_lock:
            return key in self._jobs

    def _alive(
        self, state: Mapping[str, Any], local: bool, settings: RunnerSettings
    ) -> bool:
        heartbeat = state.get("heartbeat")
        if not isinstance(heartbeat, (int, float)):
            return False
        if time.time() - heartbeat > settings.stale_after:
            return False
        if state.get("host") != this_host():
            return True
        if state.get("runner") == self._instance:
            return local
        pid = state.get("pid")
        # Another Runner in this same process (as `zocalo run` may start) keeps its
        # own jobs; only its heartbeat tells.
        return pid == os.getpid() or (isinstance(pid, int) and process_exists(pid))

    def _claim(
        self,
        store: JobStore,
        lease: Lease,
        spec: CommandSpec,
        settings: RunnerSettings,
    ) -> dict[str, Any] | None:
        """Claim the job if this Runner has room for it; its state, or None."""
        with self._jobs_lock:
            if self._stopping.is_set() or len(self._jobs) >= settings.max_jobs:
                return None
        state = running_state(
            lease.token, {**spec.describe(), "runner": self._instance}
        )
        return state if store.claim(lease.job, state) else None

    def _start(
        self,
        store: JobStore,
        lease: Lease,
        spec: CommandSpec,
        settings: RunnerSettings,
        state: dict[str, Any],
    ) -> None:
        thread = threading.Thread(
            target=self._run_job,
            args=(store, lease.job, state, spec, settings),
            name=f"runner-job-{lease.job[:12]}",
            daemon=True,
        )
        with self._jobs_lock:
            self._jobs[lease.job] = thread
        try:
            thread.start()
        except BaseException:
            with self._jobs_lock:
                self._jobs.pop(lease.job, None)
            raise

    def _run_job(
        self,
        store: JobStore,
        key: str,
        state: dict[str, Any],
        spec: CommandSpec,
        settings: RunnerSettings,
    ) -> None:
        # Worker threads log through the module logger: the service's adapter
        # carries the keys of whatever message the service thread handles now.
        extra = {"service": self.service_name(), "job": key}

        def beat() -> None:
            try:
                store.write(key, {**state, "heartbeat": time.time()})
            except JobStateError as exc:
                logger.warning("job %s: heartbeat failed: %s", key, exc, extra=extra)

        try:
            result = run_command(
                spec,
                heartbeat=beat,
                heartbeat_interval=settings.heartbeat_interval,
                stop=self._stopping,
            )
        except Exception as exc:
            logger.exception("job %s: running it failed", key, extra=extra)
            result = CommandResult.failed(f"the Runner failed to run it: {exc!r}")
        try:
            done = {**state, "status": DONE, "result": result.to_json()}
            store.write(key, {**done, "finished": time.time()})
        except JobStateError as exc:
            logger.error(
                "job %s ended but its result could not be recorded (%s); it will be "
                "reported as lost once its heartbeat is stale",
                key,
                exc,
                extra=extra,
            )
        finally:
            with self._jobs_lock:
                self._jobs.pop(key, None)


RUNNER_SERVICE = ServicePlugin(
    "Runner",
    Runner,
    "Run the commands the site allows, reporting exit code, duration and output",
)
