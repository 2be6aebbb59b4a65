"""Deprecated path of engine.sdk.schema (`ref`, `node_ref`, `DURATION`): kept for one
release so plugins that imported it keep loading."""

from engine._moved import moved

__getattr__ = moved(__name__, "engine.sdk.schema")
