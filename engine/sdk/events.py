"""For node types that look at what customers did: who among a batch performed an event
(with property conditions) in a time span, answered by the database in one query per
chunk. Declare `waits_for(settings)` on the node type to be woken as soon as such an
event arrives instead of at the end of its wait."""

from engine.core.waiting import performed

__all__ = ["performed"]
