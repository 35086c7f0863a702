"""The ceiling serving is measured against: Flask on the same gunicorn workers, parsing the body, answering a constant.

``gunicorn 'bench.flask_ceiling:create_app()'``: what one request costs in Flask,
gunicorn and the load generator before any scoring (bench/bench_serving.py).
"""
from __future__ import annotations

from flask import Flask, request


def create_app() -> Flask:
    """Return an app whose POST /invocations parses the JSON body and answers one constant prediction."""
    app = Flask(__name__)

    @app.post("/invocations")
    def invocations():
        request.get_json()
        return {"predictions": [0.5]}

    @app.get("/ready")
    def ready():
        return {"ready": True}

    return app
