"""Storage: the schema, migrations and every query, behind `Store`."""

from monitor.store.store import (
    AlertStatus,
    Candidate,
    DigestRecord,
    DigestStory,
    PruneReport,
    Store,
    StoredMatchView,
)

__all__ = [
    "AlertStatus",
    "Candidate",
    "DigestRecord",
    "DigestStory",
    "PruneReport",
    "Store",
    "StoredMatchView",
]
