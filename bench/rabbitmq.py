"""Zocalo's pika transport against raw pika, in one run on the local RabbitMQ.

    .venv/bin/python bench/rabbitmq.py [--quick]

Runs each case on both sides, one after the other, against 127.0.0.1:5672
(guest/guest), and prints a table of the figures, their ratios and the targets of
issue #5. Every queue it makes has a uuid in its name and is deleted at the end.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from _bench_common import BenchError, QueueRegistry, percentile
from _bench_raw import raw_latency, raw_throughput
from _bench_recipe import run_recipes
from _bench_zocalo import zocalo_latency, zocalo_throughput

logger = logging.getLogger("bench.rabbitmq")

SIDES = ("raw", "zocalo")
THROUGHPUT_PREFETCH = 100
PLAIN_RECIPE_PREFETCH = 100


@dataclass(frozen=True)
class Measure:
    """A row of the table: `higher` when more is better; `target` a ratio or None."""

    name: str
    unit: str
    higher: bool
    target: float | None = None


MEASURES = {
    "p50": Measure("one hop, p50", "ms", higher=False, target=1.3),
    "p99": Measure("one hop, p99", "ms", higher=False),
    "publish": Measure("small messages: publish, confirmed", "msg/s", higher=True),
    "consume": Measure("small messages: consume, acked", "msg/s", higher=True),
    "throughput": Measure("small messages: publish then consume", "msg/s", higher=True),
    "tx": Measure("3-step recipe, transactions", "recipes/s", higher=True, target=0.9),
    "plain": Measure("3-step recipe, no tx, prefetch 100", "recipes/s", True, 0.9),
    "tx_cpu": Measure("CPU of the 3 steps per recipe, tx", "ms", higher=False),
    "plain_cpu": Measure("CPU of the 3 steps per recipe, no tx", "ms", False),
    "rss": Measure("step process peak RSS", "MiB", higher=False, target=1.2),
}


@dataclass(frozen=True)
class Plan:
    latency_count: int
    messages: int
    recipes: int
    tx_prefetch: int
    timeout: float
    rounds: int


def parse_plan(argv: list[str]) -> Plan:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer of everything")
    parser.add_argument("--latency-count", type=int, help="one-hop messages (2000)")
    parser.add_argument("--messages", type=int, help="throughput messages (20000)")
    parser.add_argument("--recipes", type=int, help="recipes per recipe case (2000)")
    parser.add_argument(
        "--tx-prefetch", type=int, default=1, help="prefetch of the tx steps (1)"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds any one case may take"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat everything; report medians"
    )
    args = parser.parse_args(argv)
    for option in ("latency_count", "messages", "recipes", "tx_prefetch", "rounds"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    scale = 4 if args.quick else 1
    return Plan(
        latency_count=args.latency_count or 2000 // scale,
        messages=args.messages or 20000 // scale,
        recipes=args.recipes or 2000 // scale,
        tx_prefetch=args.tx_prefetch,
        timeout=args.timeout,
        rounds=args.rounds,
    )


def _timed(what: str, run: Callable[[], None]) -> None:
    started = time.monotonic()
    print(f"  {what} ...", end="", flush=True)
    run()
    print(f" {time.monotonic() - started:.1f} s", flush=True)


def measure_all(
    plan: Plan, registry: QueueRegistry, sides: tuple[str, ...] = SIDES
) -> dict[str, dict[str, float]]:
    """Every figure of both sides, keyed by measure and then side.

    Each case runs on one side right after the other, in the order of `sides`: this
    machine's speed drifts over minutes, and so the two figures of a ratio are taken
    as close together as they can be.
    """
    figures: dict[str, dict[str, float]] = {key: {} for key in MEASURES}
    latency = {"raw": raw_latency, "zocalo": zocalo_latency}
    throughput = {"raw": raw_throughput, "zocalo": zocalo_throughput}
    for side in sides:

        def one_hop(side: str = side) -> None:
            seconds = latency[side](registry, plan.latency_count, plan.timeout)
            figures["p50"][side] = percentile(seconds, 0.50) * 1000
            figures["p99"][side] = percentile(seconds, 0.99) * 1000

        def small(side: str = side) -> None:
            publish, consume = throughput[side](
                registry, plan.messages, THROUGHPUT_PREFETCH, plan.timeout
            )
            figures["publish"][side] = plan.messages / publish
            figures["consume"][side] = plan.messages / consume
            figures["throughput"][side] = plan.messages / (publish + consume)

        _timed(f"{side}: one hop x{plan.latency_count}", one_hop)
        _timed(f"{side}: {plan.messages} small messages", small)
    for key, transactional, prefetch in (
        ("tx", True, plan.tx_prefetch),
        ("plain", False, PLAIN_RECIPE_PREFETCH),
    ):
        for side in sides:

            def recipes(
                side: str = side,
                key: str = key,
                transactional: bool = transactional,
                prefetch: int = prefetch,
            ) -> None:
                _recipes(plan, registry, side, figures, key, transactional, prefetch)

            kind = "with" if transactional else "without"
            _timed(f"{side}: {plan.recipes} recipes {kind} transactions", recipes)
    return figures


def _recipes(
    plan: Plan,
    registry: QueueRegistry,
    side: str,
    figures: dict[str, dict[str, float]],
    key: str,
    transactional: bool,
    prefetch: int,
) -> None:
    """One side's recipe run of one kind, its figures stored under `key`."""
    recipe = run_recipes(
        registry,
        side,
        transactional=transactional,
        prefetch=prefetch,
        count=plan.recipes,
        timeout=plan.timeout,
    )
    figures[key][side] = recipe.recipes_per_s
    figures[f"{key}_cpu"][side] = recipe.cpu_ms_per_recipe
    figures["rss"][side] = max(figures["rss"].get(side, 0.0), recipe.peak_rss_mib)


def medians(rounds: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Each figure's median over the rounds."""
    return {
        key: {side: statistics.median(r[key][side] for r in rounds) for side in SIDES}
        for key in MEASURES
    }


def table(figures: dict[str, dict[str, float]]) -> str:
    """The results as a Markdown table: measure, both sides, ratio, target, met?"""
    lines = [
        "| measure | raw pika | zocalo | ratio | target | met? |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for key, measure in MEASURES.items():
        raw, ours = figures[key]["raw"], figures[key]["zocalo"]
        ratio = ours / raw
        target, met = "", ""
        if measure.target is not None:
            sign = ">=" if measure.higher else "<="
            target = f"{sign} {measure.target}"
            good = (
                ratio >= measure.target if measure.higher else ratio <= measure.target
            )
            met = "yes" if good else "NO"
        digits = 2 if measure.unit in ("ms", "MiB") else 0
        lines.append(
            f"| {measure.name} ({measure.unit}) | {raw:,.{digits}f} | "
            f"{ours:,.{digits}f} | {ratio:.2f} | {target} | {met} |"
        )
    return "\n".join(lines)


def _clean_up(registry: QueueRegistry) -> None:
    try:
        registry.delete_all()
    except BenchError as exc:
        names = ", ".join(registry.names)
        print(
            f"could not delete the queues of this run ({names}): {exc}", file=sys.stderr
        )


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    plan = parse_plan(argv)
    registry = QueueRegistry()
    print(f"run {registry.run_id}: {plan}", flush=True)
    started = time.monotonic()
    try:
        rounds = []
        for round_number in range(1, plan.rounds + 1):
            # Which side goes first alternates, so that neither always runs on a
            # broker the other has just warmed up (or filled with segments).
            sides = SIDES if round_number % 2 else SIDES[::-1]
            print(f"round {round_number} of {plan.rounds}", flush=True)
            rounds.append(measure_all(plan, registry, sides))
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        _clean_up(registry)
    print(
        f"\n{table(medians(rounds))}\n\nwhole run: {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
