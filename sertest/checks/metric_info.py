"""What each metric a check emits means: one declaration per metric id.

A check's ``metrics`` (metric id -> default threshold) says which metrics it may emit; this
table says, once for every check, what each of them measures, which way is better and in
which unit.  The report reads its one-line help from here (:func:`metric_help`);
``tests/test_figures.py`` checks that every metric a check declares or emits has an entry
and that no entry names a metric no check emits.

>>> METRICS["ccc"].better
'higher'
>>> metric_help("mae")
'mean absolute error of prediction against truth (lower is better; label units, 0-1 scale)'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    """One metric: what it measures, which direction is better (``higher``, ``lower``,
    ``closer to 0`` or ``none`` for counts and descriptions) and its unit."""

    name: str
    measures: str
    better: str
    unit: str

    @property
    def help(self) -> str:
        """The one line shown beside measurements."""
        way = "" if self.better == "none" else f"{self.better} is better; "
        return f"{self.measures} ({way}{self.unit})"


_SHARE = "share, 0-1"
_LABEL = "label units, 0-1 scale"
_LEVEL = "the perturbation's unit"

_DECLARED = (
    # correctness
    MetricInfo("ccc", "concordance correlation coefficient: agreement of prediction and truth, "
               "penalising bias and scale (1 perfect, 0 none)", "higher", "-1 to 1"),
    MetricInfo("pcc", "Pearson correlation: linear association of prediction and truth, "
               "ignoring bias and scale", "higher", "-1 to 1"),
    MetricInfo("mae", "mean absolute error of prediction against truth", "lower", _LABEL),
    MetricInfo("mae_skill", "1 minus the per-speaker MAE over the MAE of predicting the median "
               "speaker average for every speaker", "higher", "at most 1; 0 = no skill"),
    MetricInfo("class_proportion_mae", "mean absolute error of the per-speaker share of the "
               "class", "lower", _SHARE),
    MetricInfo("spearman", "Spearman rank correlation of per-speaker truth and prediction",
               "higher", "-1 to 1"),
    MetricInfo("jsd", "Jensen-Shannon distance between the histograms of prediction and "
               "truth (0 = equal)", "lower", "0-1, base 2"),
    MetricInfo("relative_difference_per_class", "predicted minus true share of the class "
               "(fairness: the group's minus the combined set's)", "closer to 0", _SHARE),
    MetricInfo("proportion_in_range", "share of predictions inside the range the emotion "
               "category implies", "higher", _SHARE),
    MetricInfo("uar", "unweighted average recall: mean recall over classes (chance = 1 / "
               "classes)", "higher", _SHARE),
    MetricInfo("uap", "unweighted average precision: mean precision over classes",
               "higher", _SHARE),
    MetricInfo("recall_per_class", "recall of the class", "higher", _SHARE),
    MetricInfo("precision_per_class", "precision of the class", "higher", _SHARE),
    # fairness
    MetricInfo("ccc_difference", "the group's CCC minus the combined set's", "closer to 0",
               "CCC units"),
    MetricInfo("uar_difference", "the group's UAR minus the combined set's", "closer to 0",
               _SHARE),
    MetricInfo("mean_difference", "the group's mean prediction minus the combined set's",
               "closer to 0", _LABEL),
    MetricInfo("mean_error_difference", "the group's mean signed error minus the combined "
               "set's", "closer to 0", _LABEL),
    MetricInfo("relative_difference_per_bin", "the group's minus the combined set's share of "
               "predictions in the bin", "closer to 0", _SHARE),
    MetricInfo("precision_per_bin_difference", "the group's minus the combined set's precision "
               "in the bin", "closer to 0", _SHARE),
    MetricInfo("recall_per_bin_difference", "the group's minus the combined set's recall in "
               "the bin", "closer to 0", _SHARE),
    MetricInfo("precision_per_class_difference", "the group's minus the combined set's "
               "precision of the class", "closer to 0", _SHARE),
    MetricInfo("recall_per_class_difference", "the group's minus the combined set's recall of "
               "the class", "closer to 0", _SHARE),
    MetricInfo("mean_shift_difference", "shift of the mean prediction with lexical sentiment in "
               "one group minus the mean shift over groups", "closer to 0", _LABEL),
    MetricInfo("mean_error_shift_difference", "shift of the mean error with lexical sentiment "
               "in one group minus the mean shift over groups", "closer to 0", _LABEL),
    MetricInfo("bin_proportion_shift_difference", "shift of the share of predictions in the bin "
               "with lexical sentiment in one group minus the mean shift", "closer to 0",
               _SHARE),
    MetricInfo("class_proportion_shift_difference", "shift of the share of the class with "
               "lexical sentiment in one group minus the mean shift", "closer to 0", _SHARE),
    MetricInfo("discovered_slices", "slices of the data with a significantly larger error "
               "(false discovery rate controlled)", "lower", "count"),
    MetricInfo("slice_error_difference", "mean error inside the slice minus outside it",
               "lower", "absolute error in label units, or error rate"),
    # robustness
    MetricInfo("ccc_change", "CCC under the condition minus the baseline's CCC",
               "closer to 0", "CCC units"),
    MetricInfo("uar_change", "UAR under the condition minus the baseline's UAR",
               "closer to 0", _SHARE),
    MetricInfo("unchanged", "share of items whose prediction stays within the tolerance "
               "(emotion: keeps its label)", "higher", _SHARE),
    MetricInfo("unchanged_room", "share of items unchanged between simulated rooms", "higher",
               _SHARE),
    MetricInfo("unchanged_position", "share of items unchanged between microphone positions",
               "higher", _SHARE),
    MetricInfo("fidelity", "agreement with the reference model under the same condition",
               "higher", _SHARE),
    MetricInfo("breakdown_snr_db", "SNR at which the criterion first crosses its limit "
               "(interpolated between levels)", "lower", "dB"),
    MetricInfo("breakdown_bitrate", "bit rate at which the criterion first crosses its limit "
               "(interpolated between levels)", "lower", "bit/s"),
    MetricInfo("breakdown_rt60_s", "reverberation time at which the criterion first crosses "
               "its limit (interpolated between levels)", "higher", "s"),
    MetricInfo("breakdown_semitones", "pitch shift at which the criterion first crosses its "
               "limit (interpolated between levels)", "further from 0", "semitones"),
    MetricInfo("median_breakdown", "median over items of the level at which an item's "
               "prediction first leaves the tolerance", "more severe", _LEVEL),
    MetricInfo("q10_breakdown", "10th percentile over items of the breakdown level (the "
               "earliest-breaking tenth)", "more severe", _LEVEL),
    MetricInfo("broken_share", "share of searched items that break within the searched range",
               "lower", _SHARE),
    MetricInfo("median_pair_severity", "median over items of the severity of the mildest "
               "breaking pair of levels on two axes (mean share of each axis' range covered; "
               "beyond 1: held everywhere)", "higher", "0-1"),
    MetricInfo("holds", "share of items for which the metamorphic expectation holds",
               "higher", _SHARE),
    MetricInfo("mean_change", "mean change of the prediction under the expectation's "
               "perturbation", "none", _LABEL),
    # model health
    MetricInfo("item_failure_share", "share of items the model failed to predict", "lower",
               _SHARE),
    MetricInfo("clipped_share", "share of the model's predictions that lay outside its "
               "declared range and were clipped into it", "lower", _SHARE),
)

#: every declared metric by id
METRICS: dict[str, MetricInfo] = {m.name: m for m in _DECLARED}


def metric_help(metric: str) -> str:
    """The one-line help of a metric id (empty if it is not declared)."""
    info = METRICS.get(metric)
    return info.help if info is not None else ""


__all__ = ["METRICS", "MetricInfo", "metric_help"]
