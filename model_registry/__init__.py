"""The model registry: the only code that talks to MLflow's registry (MlflowClient).

The registered model ``credit-approval`` is the model's single source of
truth; the live version carries the alias ``champion``. This package registers
versions, promotes one (with who/when/why), rolls back to the previous
champion, describes the versions, and resolves and loads the champion for
serving (``load_champion()`` returns the fitted scikit-learn pipeline, its
version, threshold, feature names and feature reference; ``alias=`` follows
another alias). ``inputs`` holds the rules every scored row follows and
``servable`` the check serving and the gate both run: can this version be
loaded and scored the way serving does?

Command line: ``python -m model_registry {describe,promote VERSION,rollback,challenge VERSION|--clear,champion,ui}``.
"""
from model_registry.registry import (
    CHALLENGER,
    CHAMPION,
    MODEL_NAME,
    LoadedModel,
    RegistryError,
    alias_version,
    challenge,
    champion_uri,
    champion_version,
    describe,
    find_version,
    load_champion,
    load_version,
    mark_challenger,
    promote,
    register,
    rollback,
)
from model_registry.store import configure, tracking_uri

__all__ = [
    "CHALLENGER", "CHAMPION", "MODEL_NAME", "LoadedModel", "RegistryError", "alias_version", "challenge",
    "champion_uri", "champion_version",
    "configure", "describe", "find_version", "load_champion", "load_version", "mark_challenger", "promote", "register",
    "rollback", "tracking_uri",
]
