"""Errors raised by tdlib.

Every error a user can trigger by bad input derives from :class:`TdlibError`, carries one message
that says what was wrong and what is accepted, and is raised before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable


class TdlibError(Exception):
    """Base class of all user-facing tdlib errors."""


class ConfigError(TdlibError, ValueError):
    """A configuration value (or notebook parameter) is invalid."""


class UnknownNameError(ConfigError, KeyError):
    """A name (dataset, backbone, variant, attack, profile, layer) is not registered."""

    def __init__(self, kind: str, name: object, accepted: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.accepted = sorted(accepted)
        super().__init__(f"unknown {kind} {name!r}; accepted: {', '.join(self.accepted)}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class DataError(TdlibError, FileNotFoundError):
    """Dataset files are missing, unreadable or fail their checksum."""


class DataCorruptError(DataError):
    """Dataset files exist but are truncated, corrupted or inconsistent (checksum mismatch,
    undecodable image, train/val class folders that differ); downloading would not fix them."""


class CheckpointError(TdlibError, RuntimeError):
    """A checkpoint is truncated, unsafe or does not belong to this run's configuration."""


class InputShapeError(TdlibError, ValueError):
    """A tensor given to a model or attack has the wrong rank, channels, size or range."""


class InputValueError(InputShapeError):
    """A model input has the right shape but unusable values: NaN/inf, or outside [0, 1]
    (e.g. 0-255 pixels or standardised images)."""


class DeviceError(TdlibError, RuntimeError):
    """The requested device is not available."""


class ResultsError(TdlibError, ValueError):
    """A saved result (or another file of the run store) is damaged or of another version."""


class RunDirError(TdlibError, PermissionError):
    """The results folder cannot be created or written."""


class DiskFullError(RunDirError):
    """A write failed because the disk (or the user's quota) is full; the previous file is intact."""


def one_line(why: object) -> str:
    """Any error (or message) as one line: whitespace collapsed, the type's name if empty."""
    return " ".join(str(why).split()) or type(why).__name__


def check_name(kind: str, name: object, accepted: Iterable[str]) -> str:
    """Return ``name`` if it is one of ``accepted``; raise :class:`UnknownNameError` otherwise."""
    accepted = list(accepted)
    if not isinstance(name, str) or name not in accepted:
        raise UnknownNameError(kind, name, accepted)
    return name
