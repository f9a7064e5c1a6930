"""The typer application: global options, command registration, and the error boundary."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, List, Mapping, Optional

import typer

from lbctl import __version__
from lbctl.cli.session import Session, debug_enabled
from lbctl.errors import CommandInterruptedError, EnvironmentUnusableError, InternalError, LbctlError, UsageError
from lbctl.fsutil import ENVIRONMENT_ERRNOS, NotRegularFile, unusable

from typer._click import exceptions as click_exc  # typer >= 0.26 vendors click

# What SQLite says about a full disk or a read-only home (it raises its own errors, not OSError).
SQLITE_ENVIRONMENT = ("disk is full", "readonly database", "disk I/O error", "unable to open database")

app = typer.Typer(
    name="lbctl",
    help="The package manager for LangBot plugins.",
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lbctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[Optional[Path], typer.Option("--home", help="The environment directory (env LBCTL_HOME).")] = None,
    index_url: Annotated[Optional[str], typer.Option("--index-url", help="Marketplace base URL (env LBCTL_INDEX_URL).")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Download cache (env LBCTL_CACHE_DIR).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not use the download cache.")] = False,
    offline: Annotated[bool, typer.Option("--offline", help="Never use the network (env LBCTL_OFFLINE=1).")] = False,
    find_links: Annotated[Optional[List[Path]], typer.Option("--find-links", help="Directory of .lbpkg files (repeatable).")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="table or json (env LBCTL_OUTPUT).")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Same as --output json.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Answer yes to every confirmation (env LBCTL_YES=1).")] = False,
    quiet: Annotated[int, typer.Option("--quiet", "-q", count=True, show_default=False, metavar="", help="Less narration on stderr (repeatable).")] = 0,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, show_default=False, metavar="", help="More narration on stderr (repeatable).")] = 0,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colour (env NO_COLOR).")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars.")] = False,
    target: Annotated[Optional[List[str]], typer.Option("--target", "-t", help="local, a target name, a LangBot URL or a label selector KEY=VALUE[,KEY=VALUE] (env LBCTL_TARGET; repeatable where several are accepted).")] = None,
    wait_ready: Annotated[Optional[float], typer.Option("--wait-ready", metavar="SECONDS", help="Wait until a LangBot target is ready (answers, with its plugins back) before acting.")] = None,
    timeout: Annotated[Optional[float], typer.Option("--timeout", metavar="SECONDS", help="Whole-request deadline for network calls and how long to wait for a plugin to start (env LBCTL_TIMEOUT; default 60).")] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", metavar="N", help="How many targets a fleet command works on at once (env LBCTL_JOBS; default 128).")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors (env LBCTL_DEBUG=1).")] = False,
    version: Annotated[bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """The package manager for LangBot plugins."""
    session: Session = ctx.obj
    session.flags.update(
        home=home, index_url=index_url, cache_dir=cache_dir, no_cache=no_cache or None,
        offline=offline or None, find_links=find_links or None, output="json" if json_ else output,
        yes=yes or None, no_color=no_color or None, no_progress=no_progress or None,
        verbosity=verbose or None, quiet=quiet, target=target or None, wait_ready=wait_ready, timeout=timeout,
        jobs=jobs,
    )
    session.command = ctx.invoked_subcommand or ""


_registered: list[bool] = []


def _register() -> None:
    if _registered:
        return
    from lbctl.cli import config, deps, environment, market, misc, packages, runtime, target

    for module in (packages, market, config, environment, runtime, deps, target, misc):
        module.register(app)
    _registered.append(True)


def invoke(argv: list[str], environ: Mapping[str, str]) -> int:
    """Run one command line; every failure becomes a rendered error and an exit code."""
    from lbctl.cli.argv import command_name

    _register()
    session = Session(environ, argv)
    command = typer.main.get_command(_application(argv, environ))
    try:
        returned = command.main(args=argv, prog_name="lbctl", standalone_mode=False, obj=session)
        if returned == 130:  # click turned a Ctrl-C into Abort and returned its exit code
            raise KeyboardInterrupt
        return session.exit_code
    except LbctlError as exc:
        _debug(session, exc, argv, environ)
        return session.render_error(exc, command_name(argv))
    except typer.Exit as exc:
        return exc.exit_code
    except click_exc.NoArgsIsHelpError as exc:
        exc.show()
        return 2
    except click_exc.ClickException as exc:
        return session.render_error(UsageError(exc.format_message()), command_name(argv))
    except (KeyboardInterrupt, typer.Abort):
        return session.render_error(CommandInterruptedError("interrupted"), command_name(argv))
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback unless asked
        _debug(session, exc, argv, environ)
        error = _unexpected(exc)
        error.partial = getattr(exc, "partial", None)  # type: ignore[attr-defined]  # what it had done (common.apply)
        return session.render_error(error, command_name(argv))


def _debug(session: Session, exc: BaseException, argv: list[str], environ: Mapping[str, str]) -> None:
    """With --debug (LBCTL_DEBUG=1), the traceback on stderr; the error itself is rendered as always (the same
    exit code, and with --json the same one envelope on stdout)."""
    if debug_enabled(argv, environ):
        session.renderer.traceback(exc)


def _application(argv: list[str], environ: Mapping[str, str]) -> typer.Typer:
    """The application with only the command that `argv` names: building every command's parameters from its
    signature takes ~40 ms of each start. Help, completing a command's name and unknown names get the whole
    application."""
    from lbctl.cli.argv import command_name

    if "_LBCTL_COMPLETE" in environ:  # a <TAB>: the command is among the words before the one being completed
        from lbctl.cli.completion import words_before_cursor

        argv = words_before_cursor(environ)
    name = command_name(argv).split(" ")[0]
    only = copy.copy(app)
    only.registered_commands = [c for c in app.registered_commands if c.name == name]
    only.registered_groups = [g for g in app.registered_groups if g.name == name]
    if name in ("help", "completion") or not (only.registered_commands or only.registered_groups):
        return app
    return only


def _unexpected(exc: Exception) -> LbctlError:
    """A full disk or a path in the way is the environment's doing (exit 6); anything else is a bug (exit 10)."""
    if isinstance(exc, OSError) and (exc.errno in ENVIRONMENT_ERRNOS or isinstance(exc, NotRegularFile)):
        return unusable(exc)
    if type(exc).__module__ == "sqlite3" and any(w in str(exc) for w in SQLITE_ENVIRONMENT):
        return EnvironmentUnusableError(f"Cannot write the plugins' stored data (storage.db): {exc}",
                                        hint="Free some space, or make the home writable.")
    return InternalError(f"internal error: {type(exc).__name__}: {exc}",
                         hint="This is a bug in lbctl; rerun with --debug and report the traceback.")
