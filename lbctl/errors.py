"""One error hierarchy; `lbctl.cli.main` is the only place that catches it."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The exit-code table of the CLI contract (spec §6)."""

    OK = 0
    PARTIAL = 1
    BAD_INPUT = 2
    CREDENTIALS = 3
    NOT_FOUND = 5
    PRECONDITION = 6
    NETWORK = 7
    PROTOCOL = 8
    PLUGIN = 9
    INTERNAL = 10
    INTERRUPTED = 130


EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: 'success, including "nothing to do" and "nothing found"',
    ExitCode.PARTIAL: "partial failure of a batch, a check that found problems "
    "(verify, doctor, outdated --exit-code), or a prompt answered no (nothing changed)",
    ExitCode.BAD_INPUT: "bad input: usage, invalid spec, invalid package, invalid config value, "
    "confirmation needed",
    ExitCode.CREDENTIALS: "credentials missing or rejected",
    ExitCode.NOT_FOUND: "not found: plugin, version, file",
    ExitCode.PRECONDITION: "precondition or conflict: updating a local install, no runtime host up, "
    "environment locked by another process",
    ExitCode.NETWORK: "network: unreachable, TLS, timeout, download cut short",
    ExitCode.PROTOCOL: "the marketplace, LangBot or the runtime answered in a way this version does not understand",
    ExitCode.PLUGIN: "the plugin itself failed: its tool or command raised, or it did not start",
    ExitCode.INTERNAL: "internal error (a bug: the message says how to report it)",
    ExitCode.INTERRUPTED: "interrupted",
}


class LbctlError(Exception):
    """An expected failure: rendered as one line (plus a hint), never as a traceback."""

    code: str = "error"
    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None, plugin: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.plugin = plugin

    def to_json(self) -> dict:
        return {"code": self.code, "message": self.message, "hint": self.hint, "plugin": self.plugin}


class UsageError(LbctlError):
    code, exit_code = "usage", ExitCode.BAD_INPUT


class InvalidSpecError(LbctlError):
    code, exit_code = "invalid_spec", ExitCode.BAD_INPUT


class PackageInvalidError(LbctlError):
    code, exit_code = "invalid_package", ExitCode.BAD_INPUT


class PackageMismatchError(LbctlError):
    """A package is valid but is not the one that was asked for (id, version or sha256)."""

    code, exit_code = "package_mismatch", ExitCode.BAD_INPUT


class ConfigInvalidError(LbctlError):
    code, exit_code = "invalid_config", ExitCode.BAD_INPUT


class PluginsFileError(LbctlError):
    code, exit_code = "invalid_plugins_file", ExitCode.BAD_INPUT


class ConfirmationNeededError(LbctlError):
    code, exit_code = "confirmation_needed", ExitCode.BAD_INPUT


class CancelledError(LbctlError):
    """The user answered no to a prompt: their decision, not bad input (exit 1, like apt's "Abort.")."""

    code, exit_code = "cancelled", ExitCode.PARTIAL


class CredentialsError(LbctlError):
    code, exit_code = "credentials", ExitCode.CREDENTIALS


class NotFoundError(LbctlError):
    code, exit_code = "not_found", ExitCode.NOT_FOUND


class NotInstalledError(NotFoundError):
    code = "not_installed"


class PreconditionError(LbctlError):
    code, exit_code = "precondition", ExitCode.PRECONDITION


class NotUpdatableError(PreconditionError):
    code = "not_updatable"


class LockedError(PreconditionError):
    code = "locked"


class NoHostError(PreconditionError):
    code = "no_runtime_host"


class EnvironmentUnusableError(PreconditionError):
    """The home or the cache cannot be used: disk full, read-only, a file or a dangling link in the way."""

    code = "environment_unusable"


class NetworkError(LbctlError):
    code, exit_code = "network", ExitCode.NETWORK


class ProtocolError(LbctlError):
    """The marketplace or the runtime answered something this version does not understand."""

    code, exit_code = "protocol", ExitCode.PROTOCOL


class TaskFailedError(LbctlError):
    """A LangBot task failed and LangBot did not say why."""

    code, exit_code = "task_failed", ExitCode.PARTIAL


class PluginFailedError(LbctlError):
    """The plugin itself failed: its tool or command raised, or it did not start."""

    code, exit_code = "plugin_failed", ExitCode.PLUGIN


class StateCorruptError(LbctlError):
    code, exit_code = "state_corrupt", ExitCode.PRECONDITION


class CommandInterruptedError(LbctlError):
    """Ctrl-C or SIGTERM: the command stopped, leaving everything as before it or as after it."""

    code, exit_code = "interrupted", ExitCode.INTERRUPTED


class InternalError(LbctlError):
    code, exit_code = "internal", ExitCode.INTERNAL

