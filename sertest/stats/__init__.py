"""The one statistics layer every check uses: resampling, intervals, power, multiplicity.

* :mod:`.bootstrap` - resample weights (items or speakers), bootstrap replicates of a
  metric, percentile intervals, and the generator every resample is drawn from
  (:func:`resample_rng`: derived from the audit seed, the test and the data - never from a
  model's name - so every model sees the same resamples and comparisons are paired);
* :mod:`.inference` - standard errors, simultaneous intervals over a test's cells,
  power and minimum detectable effects, paired significance of differences.

Checks compute values and replicates here; :mod:`sertest.checks.verdict` judges them.
"""

from .bootstrap import (
    cluster_weights,
    data_digest,
    percentile_interval,
    register_weighted_form,
    replicates,
    resample_rng,
    two_stage_weights,
    weighted_form,
)
from .inference import (
    POWER,
    paired_p_value,
    power_analysis,
    simultaneous_critical_value,
    standard_error,
    z_value,
)

__all__ = ["POWER", "cluster_weights", "data_digest", "paired_p_value", "percentile_interval",
           "power_analysis", "register_weighted_form", "replicates", "resample_rng",
           "simultaneous_critical_value", "standard_error", "two_stage_weights",
           "weighted_form", "z_value"]
