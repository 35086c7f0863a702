"""The JSON API: blueprints registered on flask-smorest, which also writes the OpenAPI document."""
