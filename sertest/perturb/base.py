"""The uniform base of every perturbation.

A perturbation is a pure, seeded function ``signal, sampling_rate, rng -> signal`` with a
stable, serialisable spec (``name`` plus parameters).  Its randomness comes only from the
generator it is handed; it never touches global random state.  Parameters given as a list
(``{"gain_db": [-2, -1, 1, 2]}``) mean "draw one value per call from the generator", as in
the ser-tests catalogue; :meth:`Perturbation.draw` does that and returns what it drew, and
:meth:`Perturbation.perturb` returns the output together with the drawn parameters (nothing
is stored on the instance, which worker threads share).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ..errors import UsageError
from .registry import register, registry  # the table of perturbations (one line per family)


class Perturbation:
    """Base class.  Subclasses set the class attributes and implement :meth:`apply`.

    Class attributes:
        name: registry name, e.g. ``"white_noise"``.
        description: one line for ``sertest list``, with units.
        defaults: parameter names and default values; only these names are accepted.
        length_preserving: ``True`` if the output has as many samples as the input.
        stochastic: ``True`` if :meth:`apply` uses the generator (the seed then enters
            the cache key).
        version: the implementation's version; bump it whenever the output for the same
            parameters changes (it enters the prediction cache key, so cached predictions of
            the old output are never reused).
    """

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    #: registered names of the perturbations whose code this one runs (a composite chain
    #: such as ``low_quality_phone``): their versions enter :attr:`cache_version`
    uses: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    length_preserving: ClassVar[bool] = True
    stochastic: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise UsageError(
                f"perturbation {self.name!r}: unknown parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(self.defaults)) or 'none'}"
            )
        merged = {**self.defaults, **params}
        self.params: dict[str, Any] = {k: _plain(v) for k, v in merged.items()}
        # a list-valued parameter is drawn from the generator on each call, so the
        # perturbation is stochastic (and the seed enters the cache key) whatever the class says
        self.stochastic = type(self).stochastic or any(
            isinstance(v, list) and k not in getattr(self, "list_params", ())
            for k, v in self.params.items())
        self.validate()

    # -- to override -------------------------------------------------------------
    def validate(self) -> None:
        """Check ``self.params``; raise :class:`UsageError` naming the parameter."""

    def apply(self, signal: np.ndarray, sampling_rate: int, rng: np.random.Generator,
              params: dict[str, Any]) -> np.ndarray:
        """Return the perturbed signal.  ``params`` holds drawn scalar values."""
        raise NotImplementedError

    def files(self) -> list[str]:
        """The files whose content this perturbation reads (noise banks, impulse
        responses); their digest enters :attr:`cache_version`.  May raise (a missing
        folder): the perturbation then fails per item anyway."""
        return []

    # -- cache identity ----------------------------------------------------------
    @classmethod
    def code_version(cls) -> str:
        """The implementation's version, covering the parts it uses: ``"1"`` for a plain
        perturbation, ``"1(amr_nb=1,...)"`` for a composite (its :attr:`uses`, and a
        registered parent class when this class sets its own :attr:`version`)."""
        parts = list(cls.uses)
        if "version" in cls.__dict__:
            parts += [base.name for base in cls.__mro__[1:]
                      if isinstance(base, type) and issubclass(base, Perturbation)
                      and "name" in base.__dict__ and base.name]
        if not parts:
            return str(int(cls.version))
        reg = registry()
        inner = []
        for name in sorted(set(parts)):
            if name not in reg:
                raise TypeError(f"{cls.__name__}: uses unknown perturbation {name!r}")
            inner.append(f"{name}={reg[name].code_version()}")
        return f"{int(cls.version)}({','.join(inner)})"

    @property
    def cache_version(self) -> str:
        """Everything besides :attr:`key` a prediction under this perturbation depends on:
        :meth:`code_version` plus the SHA-256 of the content of :meth:`files` (so an edited
        noise file or impulse response is never served from the prediction cache).
        Computed once per instance; a file that cannot be read gives ``+files=unreadable``
        (the perturbation then fails per item and nothing is cached)."""
        cached = self.__dict__.get("_cache_version")
        if cached is None:
            cached = self.code_version()
            try:
                paths = self.files()
                if paths:
                    cached += "+files=" + files_digest(paths)
            except Exception:  # noqa: BLE001 - reported by the perturbation per item
                cached += "+files=unreadable"
            self.__dict__["_cache_version"] = cached
        return cached

    # -- shared machinery --------------------------------------------------------
    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        """Scalar parameters for one call: list-valued parameters get one value drawn."""
        drawn = {}
        for key, value in self.params.items():
            if isinstance(value, list) and key not in getattr(self, "list_params", ()):
                drawn[key] = value[int(rng.integers(len(value)))] if value else None
            else:
                drawn[key] = value
        return drawn

    def __call__(self, signal: np.ndarray, sampling_rate: int,
                 rng: np.random.Generator) -> np.ndarray:
        """Perturb a mono float32 signal; returns a new float32 array (input untouched)."""
        return self.perturb(signal, sampling_rate, rng).signal

    def perturb(self, signal: np.ndarray, sampling_rate: int,
                rng: np.random.Generator) -> "Perturbed":
        """Like calling the perturbation, but also returns the parameters it drew.

        The drawn parameters are returned, never stored on the instance (one instance serves
        every worker thread at once).  Draws with :meth:`draw`, then perturbs with
        :meth:`apply`, both from ``rng``: the output equals ``self(signal, sr, rng)`` for the
        same generator state.

        >>> import numpy as np
        >>> from sertest.perturb import from_spec
        >>> from sertest.seeding import derive_rng
        >>> gain = from_spec({"name": "gain_small", "gain_db": [-2, 2]})
        >>> x = np.full(4, 0.1, dtype=np.float32)
        >>> y, drawn = gain.perturb(x, 16000, derive_rng(0, "item-1"))
        >>> drawn["gain_db"] in (-2, 2)
        True
        >>> bool(np.allclose(y, x * 10 ** (drawn["gain_db"] / 20)))
        True
        """
        x = np.asarray(signal, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"{self.name}: expected a mono 1-D signal, got shape {x.shape}")
        params = self.draw(rng)
        y = self.apply(x.copy(), int(sampling_rate), rng, params)
        y = np.asarray(y, dtype=np.float32)
        if self.length_preserving and y.shape[0] != x.shape[0]:
            raise RuntimeError(
                f"{self.name}: promised to preserve length, returned {y.shape[0]} "
                f"samples for {x.shape[0]}")
        return Perturbed(y, params)

    def spec(self) -> dict[str, Any]:
        """Serialisable spec: ``{"name": ..., **params}``; ``from_spec(p.spec())`` rebuilds it."""
        return {"name": self.name, **self.params}

    @property
    def key(self) -> str:
        """Canonical string of the spec, used as condition key and in cache keys."""
        return json.dumps(self.spec(), sort_keys=True, separators=(",", ":"))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Perturbation) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


class Perturbed(NamedTuple):
    """What :meth:`Perturbation.perturb` returns: the output and the parameters drawn for it."""

    #: the perturbed mono signal (float32)
    signal: np.ndarray
    #: the scalar parameters of this call (list-valued parameters drawn, see
    #: :meth:`Perturbation.draw`)
    parameters: dict[str, Any]


def from_spec(spec: dict[str, Any] | str) -> Perturbation:
    """Build a perturbation from ``{"name": ..., **params}`` (or a bare name)."""
    if isinstance(spec, str):
        spec = {"name": spec}
    spec = dict(spec)
    name = spec.pop("name", None)
    reg = registry()
    if name not in reg:
        raise UsageError(f"unknown perturbation {name!r}; known: {', '.join(reg)}")
    return reg[name](**spec)


_DIGESTS: dict[tuple, str] = {}


def files_digest(paths: list[str]) -> str:
    """SHA-256 (hex, 32 characters) over the names and bytes of ``paths``, in order.

    Each file's digest is memoised per process by (path, size, modification time, inode),
    so a folder of noise files is read once per audit, and again only after it changed.
    """
    import hashlib
    import os

    h = hashlib.sha256()
    for path in paths:
        path = os.path.abspath(os.fspath(path))
        st = os.stat(path)
        sig = (path, st.st_size, st.st_mtime_ns, st.st_ino)
        digest = _DIGESTS.get(sig)
        if digest is None:
            fh_hash = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    fh_hash.update(block)
            digest = _DIGESTS[sig] = fh_hash.hexdigest()
        h.update(digest.encode() + b"\n")  # content only: the same key on every machine
    return h.hexdigest()[:32]


def _plain(value: Any) -> Any:
    """Parameters as plain JSON types (tuples become lists, numpy scalars become floats)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def rms(x: np.ndarray) -> float:
    """Root mean square of a signal (linear amplitude)."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def db_to_amplitude(db: float) -> float:
    """Amplitude ratio of a level difference in dB (20 log10 convention)."""
    return float(10.0 ** (db / 20.0))
