"""The audit engine: plan the needed predictions, execute them once, run the checks."""

from .audit import audit
from .cache import PredictionCache, prediction_key
from .store import CLEAN, PredictionStore, condition_key

__all__ = ["CLEAN", "PredictionCache", "PredictionStore", "audit", "condition_key",
           "prediction_key"]
