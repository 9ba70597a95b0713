"""Hugging Face hub ids resolved from a hub cache the tests build (offline, HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("huggingface_hub")

from sertest.errors import UsageError  # noqa: E402
from sertest.models import load_model, parse_spec  # noqa: E402
from sertest.models.hub import hub_cache_dir, parse_hub_id  # noqa: E402
from tests.test_hf_models import save_tiny  # noqa: E402

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


def add_to_hub_cache(cache, repo_id: str, folder: str, commit: str, refs=("main",)) -> str:
    """Put ``folder``'s files into ``cache`` in huggingface_hub's layout:
    ``models--org--name/blobs/<hash>``, ``snapshots/<commit>/<file>`` → relative links to
    the blobs, ``refs/<branch>`` holding the commit hash (no newline, as the hub writes)."""
    repo = os.path.join(os.fspath(cache), "models--" + repo_id.replace("/", "--"))
    blobs, snap = os.path.join(repo, "blobs"), os.path.join(repo, "snapshots", commit)
    os.makedirs(blobs, exist_ok=True)
    os.makedirs(snap, exist_ok=True)
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as fh:
            data = fh.read()
        blob = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, blob), "wb") as fh:
            fh.write(data)
        os.symlink(os.path.join("..", "..", "blobs", blob), os.path.join(snap, name))
    os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
    for ref in refs:
        with open(os.path.join(repo, "refs", ref), "w") as fh:
            fh.write(commit)
    return snap


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch):
    """A hub cache with org/tiny-ser at two commits (main → COMMIT, v2 → OTHER)."""
    cache = tmp_path / "hf-home" / "hub"
    add_to_hub_cache(cache, "org/tiny-ser", save_tiny(tmp_path / "src1", seed=0), COMMIT)
    add_to_hub_cache(cache, "org/tiny-ser", save_tiny(tmp_path / "src2", seed=1), OTHER,
                     refs=("v2",))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("SERTEST_ALLOW_DOWNLOAD", raising=False)
    return cache


def test_parse_hub_ids():
    assert parse_hub_id("audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim") == (
        "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim", None)
    assert parse_hub_id("org/name@v1.0") == ("org/name", "v1.0")
    assert parse_hub_id(f"org/name@{COMMIT}") == ("org/name", COMMIT)
    for not_hub in ("model.onnx", "models/student.onnx", "./org/name", "/abs/name",
                    "a/b/c", "name", "org/name@", "org/weights.pt"):
        assert parse_hub_id(not_hub) is None, not_hub
    assert parse_spec("org/name@v2")[1:] == ("hf", "org/name@v2")
    assert parse_spec("teacher=org/name")[0] == "teacher"


def test_hub_id_loads_from_cache_and_records_its_commit(hub_cache):
    model = load_model("org/tiny-ser")
    info = model.info()
    assert model.name == "tiny-ser"
    assert info.extra["hub"]["repo_id"] == "org/tiny-ser"
    assert info.extra["hub"]["revision"] == "main"
    assert info.extra["hub"]["commit"] == COMMIT
    assert info.extra["hub"]["downloaded"] is False
    assert info.path.endswith(os.path.join("snapshots", COMMIT))
    # a tag and a commit hash resolve to their own snapshot; weights differ
    v2 = load_model("org/tiny-ser@v2")
    assert v2.info().extra["hub"]["commit"] == OTHER
    assert load_model(f"org/tiny-ser@{OTHER}").fingerprint() == v2.fingerprint()
    assert v2.fingerprint() != model.fingerprint()


def test_hf_home_is_honoured_at_call_time(hub_cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(hub_cache.parent))
    assert hub_cache_dir() == str(hub_cache)
    assert load_model("org/tiny-ser").info().extra["hub"]["commit"] == COMMIT


def test_missing_repo_or_revision_says_what_works(hub_cache):
    with pytest.raises(UsageError, match=r"not in the local cache .*hf-home.*local folder.*"
                                         r"--allow-download"):
        load_model("org/absent")
    with pytest.raises(UsageError, match="revision 'v9'"):
        load_model("org/tiny-ser@v9")
    # allowed, but HF_HUB_OFFLINE wins: nothing is fetched
    with pytest.raises(UsageError, match="HF_HUB_OFFLINE is set"):
        load_model("org/absent", allow_download=True)


def test_existing_local_path_wins_over_hub_id(hub_cache, tmp_path, monkeypatch):
    local = tmp_path / "work" / "org" / "tiny-ser"
    save_tiny(local, names=("anger", "neutral"), seed=5)
    monkeypatch.chdir(tmp_path / "work")
    model = load_model("org/tiny-ser")
    assert model.classes == ("anger", "neutral")
    assert "hub" not in model.info().extra


def test_remote_code_in_a_hub_snapshot_is_refused(hub_cache, tmp_path):
    src = save_tiny(tmp_path / "remote")
    cfg = json.loads(open(os.path.join(src, "config.json")).read())
    cfg["auto_map"] = {"AutoConfig": "configuration_x.XConfig"}
    with open(os.path.join(src, "config.json"), "w") as fh:
        json.dump(cfg, fh)
    add_to_hub_cache(hub_cache, "org/remote", src, COMMIT)
    with pytest.raises(UsageError, match="trust_remote_code stays off"):
        load_model("org/remote")


def test_teacher_layout_from_the_hub_records_its_commit(hub_cache, tmp_path):
    import torch

    from sertest.models.arch.teacher import TeacherModel, save_teacher, teacher_config

    cfg = teacher_config(hidden=16, layers=1, heads=2, intermediate=32,
                         conv_dim=(8, 8, 8, 8, 8, 8, 8))
    cfg.num_conv_pos_embeddings, cfg.num_conv_pos_embedding_groups = 8, 2
    torch.manual_seed(0)
    save_teacher(TeacherModel(cfg).eval(), str(tmp_path / "teacher"))
    add_to_hub_cache(hub_cache, "org/teacher", str(tmp_path / "teacher"), OTHER)
    info = load_model("org/teacher").info()
    assert info.extra["layout"] == "teacher" and info.extra["hub"]["commit"] == OTHER


def test_cli_run_with_hub_id_records_revision_in_results_and_report(hub_cache, tmp_path,
                                                                    tiny_data):
    from sertest.cli import main

    out = tmp_path / "out"
    code = main(["run", "--model", "org/tiny-ser@v2", "--data", str(tiny_data), "--suite",
                 "smoke", "--out", str(out), "--no-cache", "--no-profile", "--no-progress",
                 "--format", "html,markdown"])
    assert code in (0, 1)
    doc = json.loads((out / "results.json").read_text())
    model = next(m for m in doc["models"] if m["name"] == "tiny-ser")
    assert model["info"]["extra"]["hub"] == {
        "repo_id": "org/tiny-ser", "revision": "v2", "commit": OTHER,
        "cache_dir": str(hub_cache), "downloaded": False}
    assert f"org/tiny-ser@{OTHER}" in (out / "report.html").read_text()


def test_cli_allow_download_still_obeys_hf_hub_offline(hub_cache, tmp_path, tiny_data, capsys):
    from sertest.cli import main

    code = main(["run", "--model", "org/absent", "--allow-download", "--data", str(tiny_data),
                 "--suite", "smoke", "--out", str(tmp_path / "o"), "--no-cache"])
    assert code == 2
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().err
    assert "SERTEST_ALLOW_DOWNLOAD" not in os.environ      # the flag does not leak


def test_hub_id_without_the_hf_extra_names_it(monkeypatch, tmp_path):
    """In a core install (no torch), a hub id asks for sertest[hf] and says it is not a path."""
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "sertest.models.hf", raising=False)
    with pytest.raises(UsageError, match=r"no such file or folder; read as a Hugging Face hub "
                                         r"id.*sertest\[hf\]"):
        load_model("org/tiny-ser")
