"""Typed errors with a one-line message, a fix, and the CLI exit code each maps to.

Every error a user can cause derives from :class:`NextFaceError`; the CLI prints
``error: <message>`` (plus ``fix: <hint>``) and exits with :attr:`exit_code`.
Anything else reaching the CLI is an internal error (exit 70).
"""

from __future__ import annotations

EXIT_USAGE = 2  # bad command line, config, or unknown plugin name
EXIT_INPUT = 3  # bad input data: images, landmark files, model files, result files
EXIT_BACKEND = 4  # a plugin or backend that cannot run here (or a first-party plugin not installed)
EXIT_IO = 74  # an output cannot be written: disk full, read-only file system, permission denied (sysexits EX_IOERR)
EXIT_INTERNAL = 70  # a bug: anything that is not a NextFaceError


class NextFaceError(Exception):
    """Base class: ``message`` says what is wrong, ``hint`` how to fix it."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(NextFaceError):
    """The command line or the config asks for something that does not exist."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A config key is unknown, of the wrong type, or out of range."""


class PluginNotFoundError(UsageError):
    """A renderer, detector, model or loss name that no installed plugin registered.

    ``distribution``: the one NextFace's naming convention gives the name; ``hint``: how to
    install it. When that distribution is ``installable`` here (a plugin of this source
    checkout) the exit code is :data:`EXIT_BACKEND`: the name is right, this installation
    lacks it; otherwise the name is a usage error and ``hint`` also lists the choices.
    """

    def __init__(self, kind: str, name: str, registered: list[str], distribution: str, hint: str,
                 installable: bool = False) -> None:
        known = ", ".join(sorted(registered)) or "none"
        super().__init__(f"{kind} '{name}' is not installed (registered {kind}s: {known})", hint)
        if installable:
            self.exit_code = EXIT_BACKEND
        self.kind = kind
        self.name = name
        self.registered = sorted(registered)
        self.distribution = distribution
        self.installable = installable


class InputError(NextFaceError):
    """Input data (image, landmark file, model file, result file) is missing or malformed."""

    exit_code = EXIT_INPUT


class OutputError(NextFaceError):
    """An output cannot be written: the disk is full, the file system read-only, or
    permission is denied. Nothing half-written is left at the output's name."""

    exit_code = EXIT_IO


class BackendUnavailableError(NextFaceError):
    """A plugin is installed but its backend cannot run on this machine."""

    exit_code = EXIT_BACKEND


class PluginImportError(BackendUnavailableError):
    """A plugin failed to import or to register; the others keep working."""
