"""`zocalo run`: one recipe, start to finish, on the embedded transport in one process.

The command plans before it starts anything: it builds the recipe as the Dispatcher
will, and finds an installed service for every queue the recipe sends to. Then it runs
the Dispatcher and those services in threads on one in-process broker, sends the
request, and follows the recipe until no message carrying its recipe ID is queued,
delayed, unacknowledged or being handled.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import click
from zocalo_core import (
    ConfigurationError,
    MemoryBroker,
    MemoryTransport,
    Message,
    RunnerOptions,
    ServiceRunner,
    SiteConfiguration,
    Subscribe,
    get_registry,
)
from zocalo_core.cli import (
    PROCESSING_QUEUE,
    SiteOptions,
    build_request,
    request_options,
    site_options,
)

from zocalo_services_contrib._dispatcher_request import PreparedRequest, prepare_request

#: Exit code when a message of the run was dead-lettered or a step reported failure.
EXIT_FAILED = 1
#: Exit code when the run did not finish within `--timeout`.
EXIT_TIMED_OUT = 3

#: Outputs whose messages mean that a step failed.
FAILURE_OUTPUTS = frozenset({"failure", "timeout", "error"})

DISPATCHER = "Dispatcher"

#: Seconds between progress lines, at the most.
PROGRESS_INTERVAL = 1.0


@dataclass
class RunPlan:
    """What a run needs: the prepared request and a service for every queue."""

    prepared: PreparedRequest
    services: dict[str, type]
    failure_nodes: frozenset[int]


def plan_run(request: Mapping[str, Any], site: SiteConfiguration | None) -> RunPlan:
    """Build the recipe and match each queue to a service, or fail before starting."""
    prepared = prepare_request(request, site=site)
    consumers = queue_consumers(get_registry().records("service"))
    if PROCESSING_QUEUE not in consumers:
        raise ConfigurationError("no installed service consumes 'processing_recipe'")
    services = {PROCESSING_QUEUE: consumers[PROCESSING_QUEUE]}
    unserved = []
    for node_id, node in prepared.recipe.nodes():
        queue = node.get("queue")
        if not isinstance(queue, str):
            continue
        if queue in consumers:
            services[queue] = consumers[queue]
        else:
            unserved.append(f"node {node_id} sends to queue {queue!r}")
    if unserved:
        known = ", ".join(sorted(consumers)) or "none"
        message = (
            "no installed service consumes what the recipe needs: "
            f"{'; '.join(unserved)} (queues served by installed services: {known})"
        )
        raise ConfigurationError(message)
    return RunPlan(prepared, services, failure_nodes(prepared))


def queue_consumers(service_records: Iterable[Any]) -> dict[str, type]:
    """Which service class consumes each queue, from their declared subscriptions."""
    consumers: dict[str, type] = {}
    for record in service_records:
        for declaration in getattr(record.service_class, "subscriptions", ()):
            if isinstance(declaration, Subscribe):
                consumers.setdefault(declaration.queue, record.service_class)
    return consumers


def failure_nodes(prepared: PreparedRequest) -> frozenset[int]:
    """Nodes reached through failure, timeout or error links: arriving there fails."""
    nodes: set[int] = set()
    for _, node in prepared.recipe.nodes():
        outputs = node.get("output")
        if isinstance(outputs, Mapping):
            for name, links in outputs.items():
                if name in FAILURE_OUTPUTS:
                    nodes.update(_node_ids(links))
        nodes.update(_node_ids(node.get("error")))
    nodes.update(_node_ids(prepared.recipe.get("error")))
    return frozenset(nodes)


def _node_ids(links: Any) -> list[int]:
    if isinstance(links, int) and not isinstance(links, bool):
        return [links]
    if isinstance(links, list):
        return [link for link in links if isinstance(link, int)]
    return []


def belongs_to(recipe_id: str, body: Any) -> bool:
    """Whether a message body is the run's request or one of its recipe messages."""
    if not isinstance(body, Mapping):
        return False
    environment = body.get("environment")
    if isinstance(environment, Mapping) and environment.get("ID") == recipe_id:
        return True
    parameters = body.get("parameters")
    return isinstance(parameters, Mapping) and parameters.get("guid") == recipe_id


@dataclass
class RunProgress:
    """Counts of what the services handled for this run, fed from their threads."""

    recipe_id: str
    failure_nodes: frozenset[int]
    handled: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, queue: str, message: Message) -> None:
        body = message.body
        with self.lock:
            self.handled[queue] += 1
            if not belongs_to(self.recipe_id, body):
                return
            pointer = body.get("recipe-pointer") if isinstance(body, Mapping) else None
            if pointer in self.failure_nodes:
                self.failures.append(f"step {pointer} on {queue!r} received a failure")


class RecipeRun:
    """The services of one run on one in-process broker, and the following of it."""

    def __init__(self, plan: RunPlan, site: SiteConfiguration | None) -> None:
        self.plan = plan
        self.site = site
        self.recipe_id = plan.prepared.recipe_id
        self.broker = MemoryBroker()
        self.progress = RunProgress(self.recipe_id, plan.failure_nodes)
        self._runners: list[tuple[ServiceRunner, threading.Thread]] = []

    def start_services(self) -> None:
        for service_class in dict.fromkeys(self.plan.services.values()):
            options = RunnerOptions(
                handle_signals=False,
                host=f"zocalo-run.{self.recipe_id}",
                on_message=self.progress.observe,
            )
            runner = ServiceRunner(
                service_class,
                MemoryTransport(self.broker),
                site=self.site,
                options=options,
            )
            thread = threading.Thread(
                target=runner.run,
                name=f"zocalo-run-{service_class.__name__}",
                daemon=True,
            )
            thread.start()
            self._runners.append((runner, thread))

    def send(self, request: Mapping[str, Any], headers: Mapping[str, Any]) -> None:
        with MemoryTransport(self.broker) as transport:
            transport.send(PROCESSING_QUEUE, dict(request), headers=dict(headers))

    def outstanding_by_queue(self) -> Counter[str]:
        """Messages waiting per queue; the broker is the run's own, so all are its."""
        counts: Counter[str] = Counter()
        for queue in self.broker.queue_names():
            if not queue.startswith("dlq."):
                counts[queue] += len(self.broker.peek(queue))
        return +counts

    def outstanding(self) -> int:
        # Everything on this broker belongs to the run: its request, its recipe and any
        # recipe a step of it starts through the Dispatcher, with IDs of their own.
        return self.broker.outstanding()

    def unserved_queues(self) -> list[str]:
        """Queues holding messages that no service of this run consumes."""
        waiting = self.outstanding_by_queue()
        return sorted(queue for queue in waiting if queue not in self.plan.services)

    def dead_letters(self) -> dict[str, int]:
        counts = {}
        for queue in self.broker.queue_names():
            if queue.startswith("dlq."):
                found = len(self.broker.peek(queue))
                if found:
                    counts[queue] = found
        return counts

    def stop(self, timeout: float = 30.0) -> None:
        for runner, _ in self._runners:
            runner.request_stop()
        deadline = time.monotonic() + timeout
        for _, thread in self._runners:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.broker.close(timeout=5.0)


def follow(run: RecipeRun, timeout: float, echo: Any) -> bool:
    """Show progress until the run is done (True) or `timeout` passes (False).

    A run whose messages wait on a queue no service of it consumes can never finish:
    it ends at once (False), and the summary names the queue.
    """
    started = time.monotonic()
    last_line = ""
    last_shown = -PROGRESS_INTERVAL
    while True:
        waiting = run.outstanding()
        elapsed = time.monotonic() - started
        if waiting == 0:
            return True
        if elapsed > timeout or run.unserved_queues():
            return False
        line = progress_line(run, waiting)
        if line != last_line and elapsed - last_shown >= PROGRESS_INTERVAL:
            echo(f"[{elapsed:6.1f}s] {line}")
            last_line, last_shown = line, elapsed
        run.broker.wait_idle(0.25)


def progress_line(run: RecipeRun, waiting: int) -> str:
    with run.progress.lock:
        handled = sum(run.progress.handled.values())
    queues = run.outstanding_by_queue()
    detail = ", ".join(f"{queue} {count}" for queue, count in sorted(queues.items()))
    where = f"waiting: {detail}" if detail else "all being handled"
    return f"{handled} messages handled, {waiting} in progress ({where})"


def output_files(
    prepared: PreparedRequest, site: SiteConfiguration | None
) -> list[str]:
    """The files the recipe's steps say they write (`parameters.output_file`).

    Relative names are shown under the first output root of the `runner` block, where
    JSONLines puts them.
    """
    settings = site.plugin("runner") if site is not None else None
    roots = getattr(settings, "output_roots", ())
    files = []
    for _, node in prepared.recipe.nodes():
        parameters = node.get("parameters")
        name = (
            parameters.get("output_file") if isinstance(parameters, Mapping) else None
        )
        if isinstance(name, str):
            path = Path(name)
            files.append(
                str(roots[0] / path if roots and not path.is_absolute() else path)
            )
    return sorted(set(files))


def summarise(run: RecipeRun, finished: bool, elapsed: float) -> tuple[list[str], int]:
    """The summary lines and the exit code."""
    progress = run.progress
    with progress.lock:
        handled = dict(progress.handled)
        failures = list(progress.failures)
    dead = run.dead_letters()
    per_queue = ", ".join(
        f"{queue} {count}" for queue, count in sorted(handled.items())
    )
    lines = [
        f"recipe {run.recipe_id}: {sum(handled.values())} messages in {elapsed:.1f} s"
    ]
    lines.append(f"  handled per queue: {per_queue or 'none'}")
    for path in output_files(run.plan.prepared, run.site):
        if Path(path).exists():
            lines.append(f"  output: {path}")
    lines.extend(f"  failure: {failure}" for failure in failures)
    lines.extend(
        f"  dead-lettered: {count} in {queue}" for queue, count in dead.items()
    )
    unserved = run.unserved_queues()
    if unserved:
        names = ", ".join(repr(queue) for queue in unserved)
        lines.append(
            f"  stuck: messages wait on {names}, which no service here consumes"
        )
        return lines, EXIT_FAILED
    if not finished:
        lines.append(f"  timed out with {run.outstanding()} messages still in progress")
        return lines, EXIT_TIMED_OUT
    if failures or dead:
        return lines, EXIT_FAILED
    lines.append("  finished: every step succeeded")
    return lines, 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """Make SIGTERM stop the run as Ctrl+C does: services stop, commands are ended.

    Without this the process would die at once, leaving the Runner's commands behind.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


@click.command("run")
@request_options
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    help="Seconds to wait for the recipe to finish.",
)
@site_options
def run(
    site: SiteOptions,
    recipes: tuple[str, ...],
    recipe_file: str | None,
    settings: tuple[str, ...],
    no_id: bool,
    ids: tuple[str, ...],
    timeout: float,
) -> None:
    """Run one recipe to the end on the embedded transport, in this process.

    Starts the Dispatcher and the services the recipe's queues need, shows progress
    and a summary, and exits 1 if a message was dead-lettered or a step failed, 3 if
    the timeout passed.
    """
    if site.transport not in (None, "memory"):
        message = (
            f"zocalo run uses the embedded transport, not {site.transport!r}; "
            "to use a broker, start the services and send the request with zocalo go"
        )
        raise click.UsageError(message)
    configuration = site.open_site()
    request = build_request(
        recipes=recipes,
        recipe_file=recipe_file,
        settings=settings,
        ids=ids,
        no_id=no_id,
    )
    plan = plan_run(request, configuration)
    recipe_run = RecipeRun(plan, configuration)
    names = sorted({service.__name__ for service in plan.services.values()})
    click.echo(f"recipe {recipe_run.recipe_id}: starting {', '.join(names)}")
    started = time.monotonic()
    stop_on_sigterm()
    recipe_run.start_services()
    try:
        recipe_run.send(request, {})
        finished = follow(recipe_run, timeout, click.echo)
        lines, exit_code = summarise(recipe_run, finished, time.monotonic() - started)
    finally:
        recipe_run.stop()
    for line in lines:
        click.echo(line)
    click.get_current_context().exit(exit_code)
