"""`zocalo shutdown`: ask running services to stop, through the `command` broadcast."""

from __future__ import annotations

import socket

import click

from zocalo_core._cli.common import SiteOptions, site_options
from zocalo_core._service.status import COMMAND_BROADCAST


def full_host_id(instance: str) -> str:
    """`ws987.6543` becomes `uk.ac.diamond.ws987.6543` on a host in `diamond.ac.uk`.

    A name with exactly one dot is a short host name and a pid: it gets this machine's
    domain, reversed, in front, as the existing tool does. A machine without a domain
    adds nothing (the existing tool added a lone dot).
    """
    if instance.count(".") != 1:
        return instance
    domain = socket.getfqdn().partition(".")[2]
    if not domain:
        return instance
    return ".".join([*reversed(domain.split(".")), instance])


@click.command()
@click.argument("hosts", nargs=-1, metavar="[HOST.PID]...")
@click.option(
    "-s",
    "--service",
    "services",
    multiple=True,
    metavar="NAME",
    help="Stop every instance of this service; may be repeated.",
)
@site_options
def shutdown(
    site: SiteOptions, hosts: tuple[str, ...], services: tuple[str, ...]
) -> None:
    """Stop service instances by host id (as in their status) or by service name."""
    if not hosts and not services:
        raise click.UsageError(
            "name the instances to stop: HOST.PID arguments or -s NAME"
        )
    commands = [{"command": "shutdown", "host": full_host_id(host)} for host in hosts]
    commands += [{"command": "shutdown", "service": name} for name in services]
    transport = site.broker_transport()
    with transport:
        for command in commands:
            transport.broadcast(COMMAND_BROADCAST, command)
            target = command.get("host") or f"every instance of {command['service']}"
            click.echo(f"asked {target} to shut down")
