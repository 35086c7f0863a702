"""A logistic regression whose weights on chosen columns cannot be negative, or positive (a monotone model).

scikit-learn's ``LogisticRegression`` has no bounds on its weights, so the fit
is done here with scipy's L-BFGS-B on the same objective scikit-learn
minimises (``C`` x the log loss summed over rows + half the squared weights;
the intercept is not penalised), with a lower bound of 0 on the columns whose
rise may never lower the score and an upper bound of 0 on those whose rise may
never raise it. The result is stored in a plain ``LogisticRegression``: the
fitted model is ordinary scikit-learn, so MLflow, serving's compiled scorer and
any scikit-learn code read it without this module.

``MonotoneLogisticRegression`` wraps the fit as a scikit-learn estimator, so
that ``CalibratedClassifierCV`` can fit it fold by fold; ``plain`` takes the
wrappers out of a fitted calibrator again before the model is saved.
"""
from __future__ import annotations

import copy

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression


def fit_monotone_logistic(template: LogisticRegression, z: np.ndarray, y: np.ndarray, *,
                          non_negative: list[int], non_positive: list[int] = ()) -> LogisticRegression:
    """Return a fitted copy of ``template`` (its C): weights >= 0 on ``non_negative``, <= 0 on ``non_positive``."""
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

    lower, upper = set(non_negative), set(non_positive)
    bounds = [(0.0, None) if j in lower else (None, 0.0) if j in upper else (None, None)
              for j in range(n_weights)] + [(None, None)]
    result = minimize(objective, np.zeros(n_weights + 1), jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": 2000, "gtol": 1e-8})
    fitted = copy.deepcopy(template)
    fitted.coef_ = result.x[None, :n_weights].copy()
    fitted.intercept_ = result.x[n_weights:].copy()
    fitted.classes_ = np.array([0, 1])
    fitted.n_features_in_ = n_weights
    fitted.n_iter_ = np.array([result.nit], dtype=np.int32)
    return fitted


class MonotoneLogisticRegression(ClassifierMixin, BaseEstimator):
    """``fit_monotone_logistic`` as a scikit-learn estimator; ``fitted_`` is the plain ``LogisticRegression``."""

    def __init__(self, C: float = 1.0, non_negative: tuple[int, ...] = (), non_positive: tuple[int, ...] = ()):
        self.C = C
        self.non_negative = non_negative
        self.non_positive = non_positive

    def fit(self, z, y):
        """Fit the bounded logistic regression."""
        self.fitted_ = fit_monotone_logistic(LogisticRegression(C=self.C), z, y, non_negative=list(self.non_negative),
                                             non_positive=list(self.non_positive))
        self.classes_ = self.fitted_.classes_
        return self

    def decision_function(self, z):
        """Return the log-odds of each row."""
        return self.fitted_.decision_function(z)

    def predict_proba(self, z):
        """Return the probabilities of both classes."""
        return self.fitted_.predict_proba(z)

    def predict(self, z):
        """Return the more likely class of each row."""
        return self.fitted_.predict(z)


def plain(calibrated: CalibratedClassifierCV) -> CalibratedClassifierCV:
    """Replace the wrappers inside a fitted calibrator by their plain ``LogisticRegression``; return it."""
    for member in calibrated.calibrated_classifiers_:
        if isinstance(member.estimator, MonotoneLogisticRegression):
            member.estimator = member.estimator.fitted_
    if isinstance(calibrated.estimator, MonotoneLogisticRegression):
        calibrated.estimator = LogisticRegression(C=calibrated.estimator.C)
    return calibrated
