"""The MLflow pyfunc wrapper of a credit-approval version (logged as "model from code").

MLflow copies this file into every logged model and runs it when the model is
loaded (``mlflow.pyfunc.load_model("models:/credit-approval@champion")``), so it
imports nothing from this repository: only the fitted scikit-learn pipeline
(``artifacts/sklearn_pipeline.joblib``) and its metadata (``metadata.json``).
``predict`` returns the probability of a good outcome, one float per row: the
pipeline's ``predict_proba(X)[:, 1]`` on the features in the model's order.
"""
import json

import joblib
import numpy as np
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class CreditApprovalModel(PythonModel):
    """Score rows of yearly paid percentages with the fitted pipeline."""

    def load_context(self, context):
        self.pipeline = joblib.load(context.artifacts["sklearn_pipeline"])
        with open(context.artifacts["metadata"]) as handle:
            self.metadata = json.load(handle)

    def predict(self, context, model_input: pd.DataFrame, params=None):
        numeric = self.metadata["numeric"]
        categorical = self.metadata["categorical"]
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(
            np.asarray(model_input), columns=numeric + categorical)
        x = frame[numeric].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        if categorical:
            cats = frame[categorical].astype("object").where(frame[categorical].notna(), "missing")
            x = np.concatenate([x.astype(object), cats.astype(str).to_numpy(dtype=object)], axis=1)
        return self.pipeline.predict_proba(x)[:, 1]


set_model(CreditApprovalModel())
