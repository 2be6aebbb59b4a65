"""For node types that send: the campaign's delivery controls (rate, caps, quiet hours),
the send window, message content with each recipient's merge context, and waking the
dispatcher. The built-in send nodes (nodes/messaging.py) are written with exactly these.

A send node queues `OutboxMessage` rows in the batch's transaction and asks for the
dispatcher (`request_dispatch`); the dispatcher sends them through the channel's provider,
once each, and records their delivery status.
"""

from engine.core.controls import Controls, controls_of, over_cap, rate_slots
from engine.core.merge import load_contexts, renderer_for
from engine.core.templates import Renderer, validate_content
from engine.core.wakeups import request_dispatch
from engine.core.window import send_times

__all__ = [
    "Controls", "Renderer", "controls_of", "load_contexts", "over_cap", "rate_slots", "renderer_for",
    "request_dispatch", "send_times", "validate_content",
]
