"""Registered versions other than the live one, loaded on demand (replays of past decisions)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from mlflow.exceptions import MlflowException


class UnknownVersion(LookupError):
    """The registry has no such version (404)."""


class VersionCache:
    """Keep the last few versions asked for; load each once, even under concurrent requests."""

    def __init__(self, load: Callable[[str], object], size: int = 4):
        self._load = load
        self._size = max(1, size)
        self._models: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version: str) -> object:
        """Return a loaded version (``model_registry.LoadedModel``); raise UnknownVersion if there is none."""
        with self._lock:  # loading is rare (a replay of an old version): one at a time is fine
            if version in self._models:
                self._models.move_to_end(version)
                return self._models[version]
            try:
                model = self._load(version)
            except MlflowException as exc:
                raise UnknownVersion(f"no registered version {version}") from exc
            self._models[version] = model
            if len(self._models) > self._size:
                self._models.popitem(last=False)
            return model
