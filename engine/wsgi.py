"""Deprecated path of engine.web.wsgi (`gunicorn engine.wsgi:app` keeps working for one
release); serve `engine.web.wsgi:app`."""

import warnings

warnings.warn("engine.wsgi is deprecated: serve engine.web.wsgi:app", DeprecationWarning, stacklevel=2)

from engine.web.wsgi import app  # noqa: E402

__all__ = ["app"]
