"""The results store: one SQLite file per study holding every kind of result — runs of sweeps
and their epochs (``ResultsStore``), search studies (``SearchStore``), serving benches
(``ServingStore``) — behind one opener (``open_store``: WAL, busy timeout, one schema version
migrated forward on open) and one error class (``StoreError``). Sweep, search and bench-serving
write here; ``pqcompress report`` reads by kind."""

from __future__ import annotations

from pqcompress.results.db import Store, StoreError, open_store, table_rows, utc_now
from pqcompress.results.runs import ResultsStore, is_complete
from pqcompress.results.schema import SCHEMA_VERSION
from pqcompress.results.search import SearchStore
from pqcompress.results.serving import ServingStore, has_serving_tables

__all__ = [
    "SCHEMA_VERSION",
    "ResultsStore",
    "SearchStore",
    "ServingStore",
    "Store",
    "StoreError",
    "has_serving_tables",
    "is_complete",
    "open_store",
    "table_rows",
    "utc_now",
]
