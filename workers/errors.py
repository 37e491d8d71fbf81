"""The exceptions the Resque layer raises."""

from __future__ import annotations


class ResqueError(Exception):
    """Base of every error raised by payq's Resque layer."""


class EntryNotFound(ResqueError):
    """No entry at that position."""


class StaleEntry(ResqueError):
    """The entry at that position is not the one the caller saw: the list changed meanwhile."""


class UnknownJob(ResqueError):
    """No job is registered under that Resque class name."""


class JobLoadError(ResqueError):
    """A jobs module named in the settings could not be imported."""
