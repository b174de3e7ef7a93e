"""Errors raised when a .pqz file cannot be written or must be refused on reading."""

from __future__ import annotations

from pqcompress.errors import PQCError


class FormatError(PQCError):
    """A .pqz file is malformed: truncated, inconsistent, or not a .pqz file at all."""


class ChecksumError(FormatError):
    """A payload or the manifest does not match its SHA-256 checksum (corrupt or tampered)."""


class VersionError(FormatError):
    """The file was written in a format version this pqcompress cannot read."""


class DecompressionBombError(FormatError):
    """A payload inflates beyond its declared size, or the declared sizes exceed the limit."""


class GraphError(PQCError):
    """A .pqz file has no embedded graph of the kind asked for (re-export it with one)."""
