"""The `zocalo` click group: built-in commands, plugin commands and error handling."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from zocalo_core._cli.common import debug_requested
from zocalo_core._errors import PluginError, ZocaloError
from zocalo_core._version import __version__

#: Exit code of an unexpected error (a bug), as sysexits' EX_SOFTWARE.
INTERNAL_ERROR_EXIT = 70

#: Built-in commands, loaded only when used, so `zocalo --help` stays fast.
BUILTIN_COMMANDS = {
    "config": "zocalo_core._cli.config_cmd:config",
    "go": "zocalo_core._cli.go_cmd:go",
    "shutdown": "zocalo_core._cli.shutdown_cmd:shutdown",
    "plugins": "zocalo_core._cli.plugins_cmd:plugins",
    "recipe": "zocalo_core._cli.recipe_cmd:recipe",
    "service": "zocalo_core._cli.service_cmd:service",
}


def _load_builtin(name: str) -> click.Command:
    module_name, _, attribute = BUILTIN_COMMANDS[name].partition(":")
    command = getattr(importlib.import_module(module_name), attribute)
    assert isinstance(command, click.Command)
    return command


def _plugin_commands() -> dict[str, click.Command]:
    from zocalo_core._plugins import get_registry

    commands = {}
    for record in get_registry().records("command"):
        if record.name in BUILTIN_COMMANDS:
            message = f"plugin command {record.name!r} would shadow a built-in command"
            raise PluginError(message)
        commands[record.name] = record.command
    return commands


class ZocaloGroup(click.Group):
    """A group whose built-in and plugin commands are found lazily."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(BUILTIN_COMMANDS) | set(super().list_commands(ctx))
        names |= set(_plugin_commands())
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in BUILTIN_COMMANDS:
            return _load_builtin(cmd_name)
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        return _plugin_commands().get(cmd_name)


@click.group(cls=ZocaloGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="zocalo")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
def cli(debug: bool) -> None:
    """Zocalo: automated data processing with services, recipes and a message broker."""


def _configure_default_logging(debug: bool) -> None:
    level = logging.DEBUG if debug else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    if not debug:
        # pika logs every failed connection attempt at ERROR before our transport
        # reports the failure in one line of its own.
        logging.getLogger("pika").setLevel(logging.CRITICAL)


def main(argv: list[str] | None = None) -> None:
    """Run the `zocalo` command line; errors become one line and an exit code."""
    arguments = sys.argv[1:] if argv is None else argv
    debug = debug_requested(arguments)
    _configure_default_logging(debug)
    try:
        result = cli.main(args=arguments, prog_name="zocalo", standalone_mode=False)
    except ZocaloError as exc:
        if debug:
            raise
        click.echo(f"zocalo: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("zocalo: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug:
            raise
        # A bug, not a user error: still one line, with the way to see more.
        click.echo(
            f"zocalo: internal error: {type(exc).__name__}: {exc} (rerun with --debug "
            "to see the traceback)",
            err=True,
        )
        sys.exit(INTERNAL_ERROR_EXIT)
    # Outside standalone mode click returns the code of `ctx.exit(code)` instead of
    # raising it.
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
