"""The web layer: the Flask app (app.py), authentication and CSRF on every request
(access.py), request bodies declared once (declare.py, bodies.py) and the OpenAPI
description made from those declarations, and the REST blueprints (api/)."""
