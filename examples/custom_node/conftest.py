"""Makes this folder importable in its tests (pytest puts a conftest's folder on sys.path),
so `campaign_canvas_loyalty_tier` is found whether or not the package is installed."""
