"""A logistic regression whose weights on chosen columns cannot be negative (a monotone model).

scikit-learn's ``LogisticRegression`` has no bounds on its weights, so the fit
is done here with scipy's L-BFGS-B on the same objective scikit-learn
minimises (``C`` x the log loss summed over rows + half the squared weights;
the intercept is not penalised), with a lower bound of 0 on the chosen
columns. The result is stored in a plain ``LogisticRegression``: the fitted
model is ordinary scikit-learn, so MLflow, serving's compiled scorer and any
scikit-learn code read it without this module.
"""
from __future__ import annotations

import copy

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.linear_model import LogisticRegression


def fit_monotone_logistic(template: LogisticRegression, z: np.ndarray, y: np.ndarray, *,
                          non_negative: list[int]) -> LogisticRegression:
    """Return a fitted copy of ``template`` (its C) whose weights on the ``non_negative`` columns are >= 0."""
    z = np.asarray(z, dtype=float)
    y = np.asarray(y, dtype=float)
    c = float(template.C)
    design = np.column_stack([z, np.ones(len(z))])
    n_weights = z.shape[1]

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        margin = design @ w
        loss = np.logaddexp(0.0, margin) - y * margin
        gradient = c * (design.T @ (expit(margin) - y))
        gradient[:n_weights] += w[:n_weights]
        return c * float(loss.sum()) + 0.5 * float(w[:n_weights] @ w[:n_weights]), gradient

    bounds = [(0.0, None) if j in set(non_negative) else (None, None) for j in range(n_weights)] + [(None, None)]
    result = minimize(objective, np.zeros(n_weights + 1), jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": 2000, "gtol": 1e-8})
    fitted = copy.deepcopy(template)
    fitted.coef_ = result.x[None, :n_weights].copy()
    fitted.intercept_ = result.x[n_weights:].copy()
    fitted.classes_ = np.array([0, 1])
    fitted.n_features_in_ = n_weights
    fitted.n_iter_ = np.array([result.nit], dtype=np.int32)
    return fitted
