"""The web server's entry point: `create_app` builds the Flask app (engine/web/app.py).

Kept at the top level, where the product brief puts it; the app itself lives in the web layer.
"""

from engine.web.app import create_app

__all__ = ["create_app"]
