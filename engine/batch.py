"""Deprecated path of engine.core.batch: plugins import engine.sdk (and engine.sdk.data for
the tables). Kept for one release so plugins written against 0.1 keep loading."""

from engine._moved import moved

__getattr__ = moved(__name__, "engine.core.batch")
