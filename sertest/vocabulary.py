"""The words every layer shares: emotion dimensions, classes, topics and verdicts.

A leaf module: it imports nothing from sertest, so data, models, suites, checks and
renderers can all name these without depending on one another.

* :data:`DIMENSIONS` - the regression outputs, scores in about [0, 1] (unitless);
* :data:`EMOTION` - the name of the categorical prediction (the argmax over the classes);
* :data:`CATEGORIES` - the default emotion classes of a categorical head;
* :data:`TOPICS` - the three kinds of behavioural test;
* :data:`CLEAN` - the condition key of unperturbed audio;
* :data:`VERDICTS` - what the judge (:mod:`sertest.checks.verdict`) may say of a test.

>>> from sertest.vocabulary import DIMENSIONS, EMOTION, VERDICTS
>>> DIMENSIONS
('arousal', 'dominance', 'valence')
>>> EMOTION in DIMENSIONS
False
>>> VERDICTS[:3]
('pass', 'fail', 'inconclusive')
"""

from __future__ import annotations

#: regression dimensions, in the order adapters write their output columns
DIMENSIONS = ("arousal", "dominance", "valence")
#: the categorical prediction (argmax over the class columns)
EMOTION = "emotion"
#: default emotion classes of a categorical head
CATEGORIES = ("anger", "happiness", "neutral", "sadness")
#: behavioural test topics, in report order
TOPICS = ("correctness", "fairness", "robustness")
#: the condition key of unperturbed audio (a perturbation's key is its canonical spec)
CLEAN = "clean"

#: verdicts of a judged measurement or test
PASS, FAIL, INCONCLUSIVE, ERROR, SKIPPED = "pass", "fail", "inconclusive", "error", "skipped"
#: judged, but the model is not competent on the dimension (see ``verdict.judge_audit``)
GATED = "gated"
#: a measurement shown without a threshold
INFO = "info"
#: ``extra["role"]`` of a cell that supports a test's primary cells without carrying its
#: verdict (judged like a breakdown cell; see :mod:`sertest.checks.fairness`)
SECONDARY = "secondary"
VERDICTS = (PASS, FAIL, INCONCLUSIVE, ERROR, SKIPPED, GATED)

__all__ = ["CATEGORIES", "CLEAN", "DIMENSIONS", "EMOTION", "ERROR", "FAIL", "GATED", "INCONCLUSIVE",
           "INFO", "PASS", "SECONDARY", "SKIPPED", "TOPICS", "VERDICTS"]
