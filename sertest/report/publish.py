"""One run, one output folder: a reader never sees the files of two runs side by side.

A run writes every output into a fresh staging folder and then puts it in place
(:class:`OutputFolder`):

* **``out`` absent, empty or holding only files sertest writes** (the usual case; for a site
  of ``sertest publish``, marked by its ``site.json``, also its ``audits/`` and
  ``comparisons/`` folders): the staging
  folder, created beside ``out`` as ``.NAME.sertest-tmp-PID-XXXX``, replaces ``out`` in one
  atomic exchange (Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames, between which
  ``out`` is absent for a moment).  Afterwards ``out`` holds exactly this run's files: a
  report an earlier run wrote and this run did not (another ``--format``) is gone with it.
* **``out`` also holds other files** (``--out .``, a folder of the user's), the current working
  folder, or a parent folder that cannot be written: those files are never touched.  The
  staging folder is made inside ``out``; the earlier run's sertest files are deleted
  (``results.json`` first), then this run's are moved in (``results.json`` first).  A reader
  may see an incomplete set of this run's files for a moment, never files of two runs.

Publishing holds an exclusive lock (``flock`` on the parent folder), so two runs into one
``out`` end with the complete set of the one that published last.  Staging folders and
``*.tmpPID`` files of runs that were killed (their process is gone, or they are older than a
day) are deleted by the next run into the same folder.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
import time

#: file names sertest writes into an output folder (anything else there is the user's)
OURS = frozenset({"results.json", "timings.json", "replicates.npz", "report.html", "junit.xml",
                  "summary.md", "compare.html", "compare.md", "validity.md", "validity.json",
                  "index.html", "site.json"})
#: folders ``sertest publish`` writes into a site (replaced as a whole; only where the folder
#: already holds a site, i.e. its ``site.json``)
OURS_FOLDERS = frozenset({"audits", "comparisons"})
SITE_MARKER = "site.json"
#: the order in which files are deleted and moved in the per-file scheme
FIRST = ("results.json",)
_STAGING = re.compile(r"^\.(?:.*\.)?sertest-(?:tmp|old)-(\d+)-[^/]*$")
_TMPFILE = re.compile(r"^(?P<name>[^/]+?)\.tmp(?P<pid>\d+)(?:\.\w+)?$")
#: a staging folder or temporary file older than this (s) is stale even if its PID runs
STALE_AFTER = 24 * 3600.0
#: staging folders this process is writing now (several threads may write at once)
_ACTIVE: set[str] = set()


class OutputFolder:
    """Stage a run's files and publish them into ``out`` at once.

    Use as::

        with OutputFolder(out) as folder:
            write files into folder.staging
            folder.commit()

    Leaving the block without :meth:`commit` (an exception) deletes the staging folder and
    leaves ``out`` as it was.
    """

    def __init__(self, out: str) -> None:
        self.out = os.path.abspath(out)
        self.parent = os.path.dirname(self.out.rstrip(os.sep)) or os.sep
        self.name = os.path.basename(self.out.rstrip(os.sep))
        self.staging = ""
        self.swap = False
        self.committed = False

    # -- staging ---------------------------------------------------------------------
    def __enter__(self) -> "OutputFolder":
        os.makedirs(self.parent, exist_ok=True)
        self.swap = _may_swap(self.out, self.parent)
        # registered as active before it exists: another thread of this process cleaning
        # stale leftovers must never take it for one
        if self.swap:
            self.staging = _new_folder(self.parent, f".{self.name}.sertest-tmp-{os.getpid()}-",
                                       register=_ACTIVE)
        else:
            os.makedirs(self.out, exist_ok=True)
            self.staging = _new_folder(self.out, f".sertest-tmp-{os.getpid()}-",
                                       register=_ACTIVE)
        self._active = os.path.abspath(self.staging)
        if os.path.isdir(self.out):  # the published folder keeps the permissions it had
            os.chmod(self.staging, os.stat(self.out).st_mode & 0o7777)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.staging and os.path.isdir(self.staging):
            shutil.rmtree(self.staging, ignore_errors=True)
        _ACTIVE.discard(getattr(self, "_active", ""))

    def path(self, filename: str) -> str:
        """Where to write ``filename`` now (inside the staging folder)."""
        return os.path.join(self.staging, filename)

    # -- publishing ------------------------------------------------------------------
    def commit(self) -> None:
        """Put the staged files in place (under the lock) and clean up stale leftovers."""
        with _Lock(self.parent if self.swap else self.out):
            clean_stale(self.parent, keep=self.staging)
            if os.path.isdir(self.out):
                clean_stale(self.out, keep=self.staging)
            # the folder may have changed since staging began: decide again
            if self.swap and _may_swap(self.out, self.parent):
                self._swap()
            else:
                self._per_file()
        self.committed = True

    def _swap(self) -> None:
        try:
            os.rename(self.staging, self.out)  # out absent (or an empty folder): atomic
            self.staging = ""
            return
        except OSError:
            if not os.path.isdir(self.out):
                raise
        if _exchange(self.staging, self.out):
            shutil.rmtree(self.staging, ignore_errors=True)  # now the earlier run's files
            self.staging = ""
            return
        old = _new_folder(self.parent, f".{self.name}.sertest-old-{os.getpid()}-")
        os.rmdir(old)
        os.rename(self.out, old)
        os.rename(self.staging, self.out)
        self.staging = ""
        shutil.rmtree(old, ignore_errors=True)

    def _per_file(self) -> None:
        os.makedirs(self.out, exist_ok=True)
        new = _ordered(os.listdir(self.staging))
        site = os.path.isfile(os.path.join(self.out, SITE_MARKER))
        for name in _ordered(n for n in os.listdir(self.out) if n in OURS
                             or (site and n in OURS_FOLDERS)):
            path = os.path.join(self.out, name)
            if os.path.isdir(path) and not os.path.islink(path):  # a site's audits/, comparisons/
                shutil.rmtree(path)
            else:
                os.remove(path)
        for name in new:
            src, dst = os.path.join(self.staging, name), os.path.join(self.out, name)
            try:
                os.replace(src, dst)
            except OSError:  # another file system (out is a mount point): copy
                shutil.move(src, dst)
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging = ""


def clean_stale(folder: str, keep: str = "") -> list[str]:
    """Delete staging folders and ``NAME.tmpPID`` files that a killed run left in
    ``folder``; returns what was deleted.  A run still going (its PID alive, not older than
    :data:`STALE_AFTER`) keeps its files."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        path = os.path.join(folder, name)
        if keep and os.path.abspath(path) == os.path.abspath(keep):
            continue
        m = _STAGING.match(name)
        t = _TMPFILE.match(name)
        if m:
            pid = int(m.group(1))
        elif t and t.group("name") in OURS:
            pid = int(t.group("pid"))
        else:
            continue
        if not _stale(path, pid):
            continue
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed.append(path)
        except OSError:
            pass
    return removed


def _stale(path: str, pid: int) -> bool:
    try:
        if time.time() - os.lstat(path).st_mtime > STALE_AFTER:
            return True
    except OSError:
        return False
    if pid == os.getpid():  # ours: a leftover unless a thread of ours is staging it
        return os.path.abspath(path) not in _ACTIVE
    return not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _may_swap(out: str, parent: str) -> bool:
    """True when ``out`` may be replaced as a whole: it holds only sertest's files, is not
    the working folder (or above it), and its parent folder can be written."""
    if not os.access(parent, os.W_OK | os.X_OK):
        return False
    if not os.path.isdir(out):
        return not os.path.lexists(out)
    cwd = os.path.realpath(os.getcwd())
    real = os.path.realpath(out)
    if cwd == real or cwd.startswith(real.rstrip(os.sep) + os.sep) or os.path.islink(out):
        return False
    try:
        names = os.listdir(out)
    except OSError:
        return False
    site = SITE_MARKER in names
    for name in names:
        if name in OURS and os.path.isfile(os.path.join(out, name)):
            continue
        if site and name in OURS_FOLDERS and os.path.isdir(os.path.join(out, name)):
            continue
        if _STAGING.match(name) or ((t := _TMPFILE.match(name)) and t.group("name") in OURS):
            continue
        return False
    return True


def _ordered(names) -> list[str]:
    names = sorted(names)
    return [n for n in FIRST if n in names] + [n for n in names if n not in FIRST]


def _exchange(a: str, b: str) -> bool:
    """Atomically swap the paths ``a`` and ``b`` (Linux ``renameat2``); False where this is
    not available (another system, an old C library, a file system without it)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) != 0:
        return False
    return True


def _new_folder(parent: str, prefix: str, register: set | None = None) -> str:
    """A new, empty folder ``parent/prefixXXXXXXXX`` (mode 0777 less the umask); its
    absolute path is added to ``register`` before the folder is created."""
    while True:
        path = os.path.join(parent, prefix + secrets.token_hex(4))
        if register is not None:
            register.add(os.path.abspath(path))
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            if register is not None:
                register.discard(os.path.abspath(path))
            continue


class _Lock:
    """An exclusive ``flock`` on a folder (nothing where ``fcntl`` or the folder is not
    available: publishing then relies on the atomic renames alone)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.fd: int | None = None

    def __enter__(self) -> "_Lock":
        try:
            import fcntl

            self.fd = os.open(self.folder, os.O_RDONLY)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except (ImportError, OSError):
            if self.fd is not None:
                os.close(self.fd)
            self.fd = None
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock
            self.fd = None
