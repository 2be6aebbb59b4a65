"""Built-in node types, one module per family. Importing this package registers them."""

from nodes import audience, engagement, flow, loyalty, messaging, triggers  # noqa: F401
