"""Plan an audit: which models run, on which items, under which conditions.

:func:`plan_audit` loads the data, the suite and the models (the audited candidates, an
optional reference, the random baselines, the checks' feature extractors and the signal
statistics) and asks every check which (condition, items) predictions it needs
(:func:`plan_requests`).  It runs no model and decodes no audio: the
:class:`AuditPlan` is what :func:`sertest.engine.execute.execute` computes and what
:mod:`sertest.engine.assemble` describes.

Each check is planned through one context of its own (its items, the loaded models, the
seed, the reference), which both :meth:`~sertest.checks.base.Check.features` and
:meth:`~sertest.checks.base.Check.requests` read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..checks.base import Context
from ..data import Dataset, load_dataset
from ..errors import UsageError
from ..models import Model, load_model
from ..perturb.base import Perturbation
from ..suite import Suite, load_suite, select_items
from .store import CLEAN, condition_key

log = logging.getLogger("sertest")

#: model roles: audited (``candidate``, ``baseline``), the truth in label-free mode
#: (``reference``), and run on clean audio for the checks only (``feature``)
ROLES = ("candidate", "reference", "baseline", "feature")


@dataclass
class AuditPlan:
    """Everything an audit computes, decided before any audio is decoded."""

    dataset: Dataset
    suite: Suite
    seed: int
    #: bootstrap resamples (the suite's, unless the audit overrides it)
    n_boot: int
    #: name -> model, in the document's order (candidates, reference, baselines, features)
    models: dict[str, Model]
    #: name -> one of :data:`ROLES`
    roles: dict[str, str]
    #: the reference model's name (label-free mode), or ``None``
    reference: str | None
    #: the signal-statistics feature (its rows become the document's item warnings)
    signal_stats: Model
    #: model name -> :func:`class_mismatch` of the data and the model
    mismatches: dict[str, dict] = field(default_factory=dict)
    #: check name -> its items (the suite's ``where`` filter applied)
    subsets: dict[str, Dataset] = field(default_factory=dict)
    #: condition key -> perturbation (``None``: clean audio)
    conditions: dict[str, Perturbation | None] = field(default_factory=dict)
    #: condition key -> the item ids every model predicts under it
    needed: dict[str, set[str]] = field(default_factory=dict)
    #: check name -> why it could not plan (its entries become errors)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def audited(self) -> list[str]:
        """The audited models' names (candidates and baselines), in order."""
        return [n for n in self.models if self.roles[n] in ("candidate", "baseline")]

    @property
    def features(self) -> set[str]:
        """The feature extractors' names (they only ever see clean audio)."""
        return {n for n, r in self.roles.items() if r == "feature"}

    def context(self, dataset: Dataset, store=None, *, failed_ids: set[str] | None = None,
                item_errors: list | None = None, needed: dict[str, set[str]] | None = None,
                predictor=None) -> Context:
        """A check context on ``dataset`` with this plan's models, seed, reference and
        statistics settings (and, after execution, the store, the item errors and the
        on-demand ``predictor``)."""
        return Context(dataset, store, self.models, seed=self.seed, reference=self.reference,
                       n_boot=self.n_boot, confidence=self.suite.confidence,
                       failed_ids=failed_ids, item_errors=item_errors, needed=needed,
                       predictor=predictor)


def plan_audit(models: Sequence[str | Model], data: str | Dataset | None = None,
               suite: str | dict | Suite = "quick", *, seed: int = 0,
               baselines: bool = True, reference: str | Model | None = None,
               labels: str | None = None, allow_outside_root: bool = False,
               n_boot: int | None = None, label_range: str | dict | None = None,
               label_map: str | dict | None = None, table: str | None = None) -> AuditPlan:
    """The plan of :func:`sertest.audit` (the arguments are its own, see there)."""
    if not models:
        raise UsageError("no model given: pass at least one --model")
    dataset = data if isinstance(data, Dataset) else load_dataset(
        data, allow_outside_root=allow_outside_root, table=table, label_range=label_range,
        label_map=label_map)
    if isinstance(data, Dataset) and (label_range or label_map):
        dataset = data.relabelled(label_range=label_range, label_map=label_map)
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    loaded: dict[str, Model] = {}
    roles: dict[str, str] = {}
    for spec in models:
        _add(loaded, roles, load_model(spec, labels=labels), "candidate")
    ref_name = None
    if reference is not None:
        ref = load_model(reference, labels=labels)
        if ref.name not in loaded:
            _add(loaded, roles, ref, "reference")
        ref_name = ref.name
    # said now, not after the predictions: a data/model class-name mismatch
    mismatches = {n: class_mismatch(dataset, m) for n, m in loaded.items()}
    if baselines:
        _add_baselines(loaded, roles)
    subsets = {check.name: (dataset if not check.where else
                            dataset.subset(select_items(dataset, check.where)))
               for check, _ in suite.checks}
    n_boot = suite.n_boot if n_boot is None else n_boot
    contexts = {check.name: Context(subsets[check.name], None, loaded, seed=seed,
                                    reference=ref_name, n_boot=n_boot,
                                    confidence=suite.confidence)
                for check, _ in suite.checks}
    plan_errors: dict[str, str] = {}
    for check, _ in suite.checks:
        try:
            for feat in check.features(contexts[check.name]):
                if feat.name not in loaded:
                    _add(loaded, roles, feat, "feature")
        except Exception as exc:  # noqa: BLE001 - a check that cannot plan is an error result
            plan_errors[check.name] = f"{type(exc).__name__}: {exc}"
    from .signal_stats import SignalStats

    stats_model = SignalStats(min(m.sampling_rate for m in loaded.values()))
    _add(loaded, roles, stats_model, "feature")

    conditions: dict[str, Any] = {CLEAN: None}
    needed: dict[str, set[str]] = {CLEAN: set()}
    plan_requests(suite, subsets, lambda check: contexts[check.name], conditions, needed,
                  plan_errors)
    if ref_name is not None:
        needed[CLEAN].update(dataset.ids)
    return AuditPlan(dataset, suite, seed, n_boot, loaded, roles, ref_name, stats_model,
                     mismatches, subsets, conditions, needed, plan_errors)


def plan_requests(suite: Suite, subsets: dict[str, Dataset], ctx_for: Callable[[Any], Context],
                  conditions: dict[str, Any], needed: dict[str, set[str]],
                  plan_errors: dict[str, str]) -> None:
    """Add the (condition, items) every check of ``suite`` requests to ``conditions`` (key ->
    perturbation) and ``needed`` (key -> item ids); a check that cannot plan gets its error
    in ``plan_errors`` (its entries become errors).  ``subsets``: check name -> its items;
    ``ctx_for``: check -> its planning context.  Also used by :mod:`sertest.validate`."""
    for check, _ in suite.checks:
        try:
            for req in check.requests(ctx_for(check)):
                ck = condition_key(req.condition)
                conditions[ck] = req.condition
                ids = subsets[check.name].ids if req.ids is None else list(req.ids)
                needed.setdefault(ck, set()).update(ids)
        except Exception as exc:  # noqa: BLE001 - a check that cannot plan is an error result
            plan_errors[check.name] = f"{type(exc).__name__}: {exc}"


def class_mismatch(dataset: Dataset, model: Model) -> dict:
    """``{"class_mismatch": {model_classes, data_classes, shared}}`` when some of the data's
    emotion classes are not among ``model``'s classes (their items cannot be scored; none
    shared: its emotion correctness cannot be scored at all), with a warning naming both
    sides and the ``--label-map`` that would fix a naming difference; ``{}`` otherwise."""
    if not model.classes or not dataset.has("emotion"):
        return {}
    seen = sorted({str(v) for v in dataset.column("emotion").dropna()})
    shared = [c for c in seen if c in model.classes]
    if len(shared) == len(seen):
        return {}
    missing = [c for c in seen if c not in model.classes]
    spare = [c for c in model.classes if c not in seen]
    what = (f"only the items of {shared} can be scored" if shared else
            "its emotion correctness cannot be scored")
    log.warning("model %r: the data's emotion classes %s are not among its classes %s, so %s; "
                "if they name the same emotions, map them with --label-map DATA=MODEL, "
                "e.g. --label-map %s=%s", model.name, missing, list(model.classes), what,
                missing[0], (spare or list(model.classes))[0])
    return {"class_mismatch": {"model_classes": list(model.classes), "data_classes": seen,
                               "shared": shared}}


def _add_baselines(loaded: dict[str, Model], roles: dict[str, str]) -> None:
    """The random baselines the audited models are compared with: Gaussian and constant
    ones for dimensions, a categorical one for classes (unless already given)."""
    wants_dims = any(m.dimensions for m in loaded.values())
    wants_cls = any(m.classes for m in loaded.values())
    rates = sorted({m.sampling_rate for m in loaded.values()})
    if wants_dims and not any(n.startswith("random-gaussian") for n in loaded):
        _add(loaded, roles, load_model("random:gaussian", sampling_rate=rates[0]), "baseline")
    if wants_cls and not any(n.startswith("random-categorical") for n in loaded):
        _add(loaded, roles, load_model("random:categorical", sampling_rate=rates[0]),
             "baseline")
    if wants_dims and not any(n.startswith("constant") for n in loaded):
        _add(loaded, roles, load_model("random:constant", sampling_rate=rates[0]), "baseline")


def _add(loaded: dict, roles: dict, model: Model, role: str) -> None:
    if model.name in loaded:
        raise UsageError(f"two models are named {model.name!r}; name them with NAME=SPEC")
    loaded[model.name] = model
    roles[model.name] = role
