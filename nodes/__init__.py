"""The node types that ship with the product, one module per family, written with the
public SDK (engine.sdk) only, as a plugin's are.

They are published like a plugin's: setup.cfg names NODE_TYPES under the entry point group
`campaign_canvas.nodes` (as `builtin`), and the registry loads them from there on first use.
"""

from engine.sdk import NodeType
from nodes import audience, engagement, flow, loyalty, messaging, triggers

_FAMILIES = (triggers, flow, audience, messaging, engagement, loyalty)

#: every built-in node type, in palette order of families
NODE_TYPES: tuple[type[NodeType], ...] = tuple(
    obj for family in _FAMILIES for obj in vars(family).values()
    if isinstance(obj, type) and issubclass(obj, NodeType) and obj.__module__ == family.__name__
    and "type" in vars(obj)
)
