"""The tables a node type may read and write, as SQLAlchemy models, with the helpers that
keep such work set-based: `upsert` (insert, or do nothing / update on conflict, on SQLite
and PostgreSQL alike) and `id_chunks` (a large id list as bounded `IN (...)` conditions).

A node works on the whole batch in a few statements, in the batch's session
(`batch.session`), never a query per customer: the executor commits the batch's moves and
the node's writes together, so a crash leaves neither.
"""

from engine.core.batch import id_chunks
from engine.core.db import upsert
from engine.core.models import (
    ACTIVE,
    MAX_ID,
    AbAssignment,
    Audience,
    AudienceMember,
    Enrollment,
    Event,
    JourneyStep,
    NodeState,
    Notification,
    OutboxMessage,
    Poll,
    PollResponse,
    Popup,
    Profile,
    Segment,
    SegmentMember,
)

__all__ = [
    "ACTIVE", "MAX_ID", "AbAssignment", "Audience", "AudienceMember", "Enrollment", "Event", "JourneyStep",
    "NodeState", "Notification", "OutboxMessage", "Poll", "PollResponse", "Popup", "Profile", "Segment",
    "SegmentMember", "id_chunks", "upsert",
]
