"""Hugging Face hub ids: ``org/name`` or ``org/name@revision`` → a local snapshot folder.

A spec is read as a hub id only when no file or folder of that name exists (a local path
always wins) and it has the form ``org/name[@revision]``: exactly one ``/``, no leading
``.`` or ``/``, no model-file extension (``.onnx``, ``.pt``, ...).  ``revision`` is a
branch, tag or commit hash (default ``main``).

Resolution goes through ``huggingface_hub.snapshot_download`` with the cache folder
taken from the environment *at call time* (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else
``~/.cache/huggingface/hub``), so a cache set after import is honoured.  It reads the
local cache only (``local_files_only=True``) unless downloading is allowed — by the
``allow_download`` option, the ``--allow-download`` flag of ``sertest run`` or
``SERTEST_ALLOW_DOWNLOAD=1`` — and ``HF_HUB_OFFLINE`` is not set.  The commit the
revision resolved to is returned, so an audit records exactly which weights it ran.

This module imports ``huggingface_hub`` lazily; it never imports torch.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from ..errors import ModelError, UsageError

#: environment switch equivalent to ``sertest run --allow-download``
ALLOW_DOWNLOAD_ENV = "SERTEST_ALLOW_DOWNLOAD"
#: what a download fetches: configs (model, feature extractor, sertest head, shard index)
#: and weights; never code (``*.py``) or other frameworks' weights
DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "pytorch_model*.bin"]
#: extensions that name a model file, never a hub repository
_FILE_EXTENSIONS = (".onnx", ".pt", ".pth", ".jit", ".ts", ".py", ".bin", ".safetensors",
                    ".yaml", ".yml", ".json")
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
HUB_ID = re.compile(rf"^(?P<repo>{_NAME}/{_NAME})(?:@(?P<revision>[A-Za-z0-9][A-Za-z0-9._/-]*))?$")
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class HubSnapshot:
    """A hub repository resolved to a local snapshot folder.

    Attributes:
        repo_id: ``org/name``.
        revision: the revision asked for (``main`` by default).
        commit: the 40-hex commit hash it resolved to (the snapshot folder's name).
        folder: the snapshot folder (files are links into the cache's ``blobs/``).
        cache_dir: the hub cache that was read.
        downloaded: whether files were fetched in this call.
    """

    repo_id: str
    revision: str
    commit: str
    folder: str
    cache_dir: str
    downloaded: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"repo_id": self.repo_id, "revision": self.revision, "commit": self.commit,
                "cache_dir": self.cache_dir, "downloaded": self.downloaded}


def parse_hub_id(text: str) -> tuple[str, str | None] | None:
    """``"org/name@rev"`` → ``("org/name", "rev")``; ``None`` if it is not of that form."""
    text = text.strip()
    if text.lower().endswith(_FILE_EXTENSIONS):
        return None
    m = HUB_ID.match(text)
    if not m:
        return None
    return m.group("repo"), m.group("revision")


def looks_like_hub_id(text: str) -> bool:
    """True if ``text`` is no existing path and has the form ``org/name[@revision]``."""
    return not os.path.exists(text) and parse_hub_id(text) is not None


def hub_cache_dir() -> str:
    """The hub cache folder, from the environment as it is now (not at import)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return os.path.expanduser(os.environ[var])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
    return os.path.join(os.path.expanduser(home), "hub")


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` is set to a true value."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def download_allowed(option: bool | None = None) -> bool:
    """The ``allow_download`` option if given, else ``SERTEST_ALLOW_DOWNLOAD``."""
    if option is not None:
        return bool(option)
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip().lower() in _TRUE


def resolve_hub_id(repo_id: str, revision: str | None = None, *,
                   allow_download: bool | None = None) -> HubSnapshot:
    """Find ``repo_id`` at ``revision`` in the local hub cache (downloading only if allowed).

    Raises:
        UsageError: not in the cache and downloading not allowed (or offline); the message
            names the cache folder and the ways that work.
        ModelError: the hub refused (no such repository or revision, gated, network).
    """
    try:
        import huggingface_hub
        from huggingface_hub.errors import (HfHubHTTPError, LocalEntryNotFoundError,
                                            RepositoryNotFoundError, RevisionNotFoundError)
    except ModuleNotFoundError as exc:
        raise UsageError(f"--model {repo_id}: reading Hugging Face hub ids needs huggingface_hub; "
                         "install it with: pip install 'sertest[hf]'") from exc
    rev = revision or "main"
    cache = hub_cache_dir()
    where = f"--model {repo_id}{'@' + revision if revision else ''}"
    folder = None
    try:
        folder = huggingface_hub.snapshot_download(repo_id, revision=rev, cache_dir=cache,
                                                   local_files_only=True)
    except LocalEntryNotFoundError:
        folder = None
    except (ValueError, OSError) as exc:
        raise ModelError(f"{where}: cannot read the hub cache {cache}: {exc}") from exc
    downloaded = False
    if folder is None:
        if not download_allowed(allow_download) or hub_offline():
            why = ("HF_HUB_OFFLINE is set, so nothing is downloaded" if hub_offline() and
                   download_allowed(allow_download) else
                   "sertest downloads only when allowed")
            raise UsageError(
                f"{where}: no local file or folder of that name, and revision {rev!r} of the "
                f"Hugging Face hub repository {repo_id!r} is not in the local cache {cache} "
                f"({why}). What works: pass a local folder (e.g. one saved with "
                "save_pretrained); fetch it once with `huggingface-cli download "
                f"{repo_id}`; point HF_HUB_CACHE or HF_HOME at the cache that holds it; or "
                f"allow sertest to download it with --allow-download (or "
                f"{ALLOW_DOWNLOAD_ENV}=1) and HF_HUB_OFFLINE unset")
        try:
            folder = huggingface_hub.snapshot_download(
                repo_id, revision=rev, cache_dir=cache, allow_patterns=DOWNLOAD_PATTERNS)
        except RepositoryNotFoundError as exc:
            raise ModelError(f"{where}: the hub has no repository {repo_id!r} (or it is "
                             "private or gated: log in with `huggingface-cli login`)") from exc
        except RevisionNotFoundError as exc:
            raise ModelError(f"{where}: repository {repo_id!r} has no revision {rev!r}; "
                             "give a branch, tag or commit hash that exists") from exc
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
            raise ModelError(f"{where}: download failed ({type(exc).__name__}: {exc}); "
                             f"fetch it with `huggingface-cli download {repo_id}` and "
                             "run again") from exc
        downloaded = True
    folder = str(folder)
    commit = os.path.basename(os.path.normpath(folder))
    return HubSnapshot(repo_id=repo_id, revision=rev, commit=commit, folder=folder,
                       cache_dir=cache, downloaded=downloaded)
