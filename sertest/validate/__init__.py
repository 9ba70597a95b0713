"""Self-validation of a suite by planted defects (``sertest validate``).

See :mod:`sertest.validate.run` for the procedure, :mod:`sertest.validate.defects` for the
defects and the sizes thresholds name, :mod:`sertest.validate.oracle` for the oracle.
"""

from .defects import DEFECTS, Defect
from .run import Planted, Validation, resample_ids, validate

__all__ = ["DEFECTS", "Defect", "Planted", "Validation", "resample_ids", "validate"]
