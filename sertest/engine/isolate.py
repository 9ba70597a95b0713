"""Models in supervised worker processes: a crash costs only that model's predictions.

A model's native code can end the interpreter: a segfault in an extension, ``abort()``,
``os._exit()``, the kernel's out-of-memory killer.  With ``isolate`` the engine runs each
model loaded from a spec (see :mod:`sertest.models`) in worker processes of its own: the
audit's process decodes and perturbs the audio as usual and ships the float32 signals to a
worker, which has loaded the model from the same spec and predicts.  When a worker dies
during a call, the call raises :class:`ModelCrash` naming how it ended (``killed by
SIGSEGV``, ``exited with code 3``) and the next call starts a fresh worker.  The engine
then retries the call's signals one by one; the item whose signal crashes a fresh worker
again is quarantined for that model (its remaining signals are item errors), and after
:data:`MAX_CRASHES` crashes the model is given up (:class:`ModelGivenUp`): its remaining
predictions are item errors and its tests ``error``.  The other models never notice.

Run in the audit's process, never isolated: models passed as objects without a ``spec``
(a :class:`~sertest.models.base.Model` built in Python cannot always be re-created in
another process), the random baselines and sertest's own feature extractors.  A model whose
worker cannot load it, or loads something else than the audit's process did (other
outputs, rate or fingerprint), runs in the audit's process too, with one warning.

Outputs are those of an in-process run: the worker calls the model's own
:meth:`~sertest.models.base.Model.predict` on the same signals and generators, with one
thread per call for :attr:`~sertest.models.base.Model.concurrent` models (which get up to
``jobs`` workers, one call each at a time).

Protocol: length-prefixed pickles over the worker's stdin and a duplicate of its stdout
(the model's own prints go to stderr).  A worker ignores SIGINT (a Ctrl-C stops the audit,
which stops its workers) and exits when its stdin closes (the audit's process is gone).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from typing import Any

import numpy as np

from ..errors import ModelError
from ..models.base import Model, ModelInfo

log = logging.getLogger("sertest")

#: crashes of one model's workers after which the model is given up for the audit
MAX_CRASHES = 5
#: seconds a worker may take to start and load its model
START_TIMEOUT = 300.0

#: a worker loads this file by path, so that it imports neither the package sertest.engine
#: (the audit, the checks, pandas) nor anything else the model does not need
_BOOT = ("import importlib.util, json, os, sys; "
         "sys.path[:0] = json.loads(os.environ['SERTEST_WORKER_PATH']); "
         "spec = importlib.util.spec_from_file_location('sertest.engine.isolate', "
         "os.environ['SERTEST_WORKER_MODULE']); "
         "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
         "module.serve()")
_HEADER = struct.Struct("<Q")


class ModelCrash(ModelError):
    """The worker process running a model died during a call."""


class ModelGivenUp(ModelCrash):
    """A model that crashed :data:`MAX_CRASHES` times: no further worker is started."""


def exit_text(returncode: int) -> str:
    """How a process ended, for people: ``killed by SIGSEGV``, ``exited with code 3``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with code {returncode}"


def _hint(returncode: int) -> str:
    if returncode == -signal.SIGKILL:
        return "SIGKILL: out of memory (the kernel's OOM killer) or killed by another process"
    return ""


def isolatable(model: Model) -> bool:
    """Whether ``model`` can run in a worker: loaded from a spec, not a random baseline."""
    spec = getattr(model, "spec", None)
    if not isinstance(spec, str) or not isinstance(getattr(model, "spec_options", None), dict):
        return False
    from ..models import parse_spec

    try:
        _, kind, _ = parse_spec(spec)
    except Exception:  # noqa: BLE001 - a spec that no longer resolves: keep it in-process
        return False
    return kind != "random"


# -- the worker side ------------------------------------------------------------------

def _write(fh, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(_HEADER.pack(len(data)))
    fh.write(data)
    fh.flush()


def _read(fh) -> Any:
    """The next message, or ``None`` at the end of the stream (the other side is gone)."""
    head = fh.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    size = _HEADER.unpack(head)[0]
    data = fh.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def _raised(exc: BaseException) -> tuple:
    """The reply for a model's exception: the exception itself if it survives a pickle
    round trip, else its class name and message (see :func:`_reraise`)."""
    try:
        pickle.loads(pickle.dumps(exc))
        return ("raise", exc)
    except Exception:  # noqa: BLE001 - any unpicklable exception
        return ("raise_text", type(exc).__name__, str(exc))


def _reraise(reply: tuple) -> None:
    """Raise the model's exception in the audit's process; one that could not travel is
    raised as an exception of the same class name and message, so the engine's error text
    is that of an in-process run."""
    if reply[0] == "raise":
        raise reply[1]
    raise type(reply[1], (Exception,), {})(reply[2])


def serve() -> None:
    """A worker's main loop (started by :class:`IsolatedModel`, never by users)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inp = os.fdopen(os.dup(0), "rb")
    out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)  # the model's prints must not corrupt the protocol
    model = None
    while True:
        msg = _read(inp)
        if msg is None or msg[0] == "exit":
            return
        if msg[0] == "load":
            _, spec, options = msg
            try:
                from ..models import load_model

                model = load_model(spec, **options)
                if model.concurrent:
                    model.use_threads(1)  # as the engine does in-process
                _write(out, ("ready", tuple(model.outputs), int(model.sampling_rate),
                             model.fingerprint()))
            except BaseException as exc:  # noqa: BLE001 - reported to the audit
                _write(out, ("error", f"{type(exc).__name__}: {exc}"))
        elif msg[0] == "predict":
            _, signals, rngs = msg
            try:
                y = np.asarray(model.predict(signals, rngs))  # type: ignore[union-attr]
                reply: tuple = ("ok", y)
            except BaseException as exc:  # noqa: BLE001 - the model's error, relayed
                reply = _raised(exc)
            _write(out, reply)


# -- the audit's side -----------------------------------------------------------------

class _Died(Exception):
    def __init__(self, returncode: int) -> None:
        super().__init__(returncode)
        self.returncode = returncode


class _Worker:
    """One worker process with the model loaded."""

    def __init__(self, spec: str, options: dict[str, Any]) -> None:
        env = dict(os.environ, SERTEST_WORKER_PATH=json.dumps(list(sys.path)),
                   SERTEST_WORKER_MODULE=os.path.abspath(__file__))
        self.proc = subprocess.Popen([sys.executable, "-c", _BOOT], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, close_fds=True)
        self.ready = self._ask(("load", spec, options))

    def _ask(self, msg: tuple) -> tuple:
        try:
            _write(self.proc.stdin, msg)
            reply = _read(self.proc.stdout)
        except (BrokenPipeError, ConnectionResetError, OSError, ValueError):
            reply = None
        if reply is None:
            raise _Died(self._wait())
        return reply

    def _wait(self) -> int:
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # stdout closed but still alive: end it
            self.proc.kill()
            return self.proc.wait()

    def predict(self, signals: list[np.ndarray], rngs) -> tuple:
        return self._ask(("predict", [np.asarray(s, dtype=np.float32) for s in signals], rngs))

    def stop(self, kill: bool = False) -> None:
        if self.proc.poll() is None and not kill:
            try:
                self.proc.stdin.close()  # the worker exits at the end of its input
                self.proc.wait(timeout=10)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for fh in (self.proc.stdin, self.proc.stdout):
            try:
                fh.close()
            except (OSError, ValueError):
                pass


class IsolatedModel(Model):
    """``model`` run in supervised worker processes (see the module docstring).

    Args:
        model: a model loaded from a spec (:func:`isolatable`).
        workers: most worker processes at once (used by concurrent models only).
        max_crashes: crashes after which the model is given up.
    """

    def __init__(self, model: Model, workers: int = 1, max_crashes: int = MAX_CRASHES) -> None:
        self.model = model
        for attr in ("name", "sampling_rate", "dimensions", "classes", "batchable", "max_batch",
                     "call_samples", "stochastic", "output_range", "concurrent", "spec",
                     "spec_options"):
            setattr(self, attr, getattr(model, attr))
        self.max_workers = max(1, int(workers)) if model.concurrent else 1
        self.max_crashes = int(max_crashes)
        #: predictions the audit asks of the model in this run (for the crash message)
        self.expected: int | None = None
        self.done = 0
        self.crashes = 0
        self.last_crash = ""
        self.in_process = False
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self._cond = threading.Condition()
        self._closed = False
        self._starting = 0

    # what the engine reads of a model: the wrapped model's own
    def fingerprint(self) -> str:
        return self.model.fingerprint()

    def info(self) -> ModelInfo:
        return self.model.info()

    def use_threads(self, threads: int) -> None:
        if self.in_process:
            self.model.use_threads(threads)  # workers always run one thread per call

    def start(self) -> str | None:
        """Start the first worker; ``None`` if it runs the model, else why it cannot (the
        model then runs in the audit's process)."""
        try:
            worker = self._spawn()
        except _Died as died:
            return f"its worker {exit_text(died.returncode)} while loading it"
        except ModelError as exc:
            return str(exc)
        with self._cond:
            self._idle.append(worker)
        return None

    def _spawn(self) -> _Worker:
        worker = _Worker(self.spec, self.spec_options)
        status = worker.ready
        if status[0] != "ready":
            worker.stop(kill=True)
            raise ModelError(f"its worker cannot load it: {status[1]}")
        mine = (tuple(self.model.outputs), int(self.model.sampling_rate), self.model.fingerprint())
        if tuple(status[1:]) != mine:
            worker.stop(kill=True)
            raise ModelError("its worker loads a different model from the spec (outputs, "
                             f"rate, fingerprint {tuple(status[1:])} against {mine})")
        with self._cond:
            self._all.append(worker)
            closed = self._closed
        if closed:
            worker.stop(kill=True)
            raise ModelError(f"model {self.name!r}: the audit is closing its workers")
        return worker

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise ModelError(f"model {self.name!r}: the audit is closing its workers")
                if self.crashes >= self.max_crashes:
                    raise ModelGivenUp(self.given_up_text())
                if self._idle:
                    return self._idle.pop()
                live = sum(w.proc.poll() is None for w in self._all) + self._starting
                if live < self.max_workers:
                    self._starting += 1
                    break
                self._cond.wait()
        try:
            return self._spawn()
        except _Died as died:
            self._crashed(died.returncode, "while loading it in a fresh worker")
            raise ModelCrash(self.crash_text()) from None
        finally:
            with self._cond:
                self._starting -= 1
                self._cond.notify_all()

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            if self._closed:
                worker.stop(kill=True)
            else:
                self._idle.append(worker)
            self._cond.notify()

    def _crashed(self, returncode: int, when: str = "") -> None:
        with self._cond:
            self.crashes += 1
            of = f" of {self.expected}" if self.expected is not None else ""
            notes = "; ".join(x for x in (when, _hint(returncode)) if x)
            self.last_crash = (f"{exit_text(returncode)} after {self.done}{of} predictions"
                               + (f" ({notes})" if notes else ""))
            self._cond.notify_all()
        log.warning("model %r crashed: %s%s", self.name, self.last_crash,
                    "; giving it up" if self.crashes >= self.max_crashes
                    else "; continuing in a fresh worker")

    def crash_text(self) -> str:
        return f"model {self.name!r} crashed: {self.last_crash}"

    def given_up_text(self) -> str:
        return (f"skipped: model {self.name!r} crashed {self.crashes} times (last: "
                f"{self.last_crash}); it is given up after {self.max_crashes} crashes")

    def summary(self) -> str | None:
        """One line for results.json when the model crashed, else ``None``."""
        if not self.crashes:
            return None
        text = f"crashed {self.crashes} time{'s' * (self.crashes != 1)} (last: {self.last_crash})"
        if self.crashes >= self.max_crashes:
            text += f"; given up after {self.max_crashes} crashes"
        return text

    def predict(self, signals, rngs=None) -> np.ndarray:
        if self.in_process:
            return self.model.predict(signals, rngs)
        worker = self._acquire()
        try:
            reply = worker.predict(signals, rngs)
        except _Died as died:
            if self._closed:  # stopped by close() (a call the engine abandoned on timeout)
                raise ModelError(f"model {self.name!r}: the audit stopped its worker") from None
            self._crashed(died.returncode)
            raise ModelCrash(self.crash_text()) from None
        self._release(worker)
        if reply[0] != "ok":
            _reraise(reply)
        with self._cond:
            self.done += len(signals)
        return reply[1]

    def close(self) -> None:
        """Stop the workers (the wrapped model stays open: the audit closes it)."""
        with self._cond:
            self._closed = True
            idle = set(map(id, self._idle))
            workers, self._all, self._idle = list(self._all), [], []
            self._cond.notify_all()
        for w in workers:  # a busy one is in a call the engine gave up on (timeout): kill it
            w.stop(kill=id(w) not in idle)


def isolate_models(models: dict[str, Model], expected: dict[str, int], workers: int = 1,
                   max_crashes: int = MAX_CRASHES) -> dict[str, IsolatedModel]:
    """Start workers for the models of ``models`` that have predictions to compute
    (``expected``: name -> count) and can be isolated; name -> its isolated stand-in.
    A model whose worker does not start stays in-process (one warning names why)."""
    from concurrent.futures import ThreadPoolExecutor

    chosen = {n: IsolatedModel(m, workers, max_crashes) for n, m in models.items()
              if expected.get(n) and isolatable(m)}
    for name, proxy in chosen.items():
        proxy.expected = expected[name]
    with ThreadPoolExecutor(max(1, len(chosen))) as pool:
        reasons = dict(zip(chosen, pool.map(IsolatedModel.start, chosen.values())))
    out = {}
    for name, proxy in chosen.items():
        if reasons[name] is None:
            out[name] = proxy
        else:
            proxy.close()
            log.warning("model %r runs in the audit's process, without crash isolation: %s",
                        name, reasons[name])
    return out


def load_from_spec(spec: str, options: dict[str, Any]) -> Model:
    """``load_model(spec, **options)``, memoised per process (a Dask worker unpickling the
    same model for several tasks loads it once)."""
    key = (spec, json.dumps(options, sort_keys=True, default=str))
    with _LOADED_LOCK:
        if key not in _LOADED:
            from ..models import load_model

            _LOADED[key] = load_model(spec, **options)
        return _LOADED[key]


_LOADED: dict[tuple[str, str], Model] = {}
_LOADED_LOCK = threading.Lock()


class BySpec:
    """A model that travels as its spec: unpickled, it is the model loaded anew from the
    spec in the receiving process (for models whose code cannot be pickled by reference,
    such as ``callable:path/to/file.py:function``)."""

    def __init__(self, model: Model) -> None:
        self.spec = model.spec
        self.options = dict(model.spec_options)

    def __reduce__(self):
        return (load_from_spec, (self.spec, self.options))
