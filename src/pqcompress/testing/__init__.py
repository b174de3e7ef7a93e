"""Helpers for tests: tiny real models that train in milliseconds."""

from __future__ import annotations

from pqcompress.testing.tiny import TinyConvNet, TinyMLP

__all__ = ["TinyConvNet", "TinyMLP"]
