"""A composite of perturbations applied one after another (``chain``).

``{"name": "chain", "steps": [{"name": "white_noise", "snr_db": 10},
{"name": "opus", "bitrate": 9500}]}`` adds white noise at 10 dB SNR, then codes the noisy
signal with Opus at 9.5 kbit/s: two conditions at once, as the two-axis worst-case search
(:mod:`sertest.checks.search`) needs them.  The steps run in the order given, each on the
previous one's output, all drawing from the one generator handed to the chain (so the
chain is as deterministic for a seed as its parts).

Its cache identity covers its parts: the key holds every step's full spec, and
:attr:`Chain.cache_version` holds every step's own cache version (implementation version
and the digest of any file it reads), so a version bump of a part never serves stale
predictions of the chain.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from .base import Perturbation, from_spec
from .registry import register


@register
class Chain(Perturbation):
    """Apply ``steps`` (a list of perturbation specs) in order; length-preserving and
    stochastic when any step is."""

    name = "chain"
    version = 1
    description = "perturbations in sequence: steps (list of specs, e.g. white_noise then opus)"
    defaults = {"steps": [{"name": "white_noise", "snr_db": 20.0},
                          {"name": "gain", "gain_db": -6.0}]}
    #: ``steps`` is a list of specs, not a list of values to draw from
    list_params = ("steps",)

    def validate(self) -> None:
        steps = self.params["steps"]
        if not isinstance(steps, list) or not steps:
            raise UsageError(f"perturbation 'chain': parameter steps={steps!r} must be a "
                             f"non-empty list of specs such as [{{name: white_noise, "
                             f"snr_db: 10}}, {{name: opus, bitrate: 9500}}]")
        parts = []
        for k, spec in enumerate(steps):
            if not isinstance(spec, dict) or "name" not in spec:
                raise UsageError(f"perturbation 'chain': steps[{k}]={spec!r} must be a spec "
                                 f"with a name, e.g. {{name: opus, bitrate: 9500}}")
            try:
                parts.append(from_spec(spec))
            except UsageError as e:
                raise UsageError(f"perturbation 'chain': steps[{k}]: {e}") from None
        self.parts: tuple[Perturbation, ...] = tuple(parts)
        self.stochastic = self.stochastic or any(p.stochastic for p in parts)
        self.length_preserving = all(p.length_preserving for p in parts)

    def files(self) -> list[str]:
        return [f for p in self.parts for f in p.files()]

    @property
    def cache_version(self) -> str:
        """``"1[white_noise=1;opus=2]"``: the chain's version and each step's cache version
        (which covers the files that step reads)."""
        cached = self.__dict__.get("_cache_version")
        if cached is None:
            inner = ";".join(f"{p.name}={p.cache_version}" for p in self.parts)
            cached = self.__dict__["_cache_version"] = f"{self.code_version()}[{inner}]"
        return cached

    def apply(self, signal, sampling_rate, rng, params: dict[str, Any]):
        y = signal
        for p in self.parts:
            y = p.perturb(y, sampling_rate, rng).signal
        return y
