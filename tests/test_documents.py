"""Documents that always serialise, exit codes as documented, one consistent output folder,
bounded YAML, summaries safe as pull-request comments, no absolute paths in outputs
(issue 14, points 6 to 9)."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import unicodedata

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sertest import audit
from sertest.cli import main
from sertest.errors import UsageError
from sertest.report import markdown, write_results
from sertest.report.publish import OutputFolder, clean_stale
from sertest.results import Results
from sertest.suite import load_suite
from tests.helpers import make_onnx_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """A real audit (smoke suite) of a tiny ONNX model on 24 WAV items and one broken file,
    written into ``out``; returns (root, results, out)."""
    root = tmp_path_factory.mktemp("documents")
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(3)
    rows = []
    for i in range(24):
        level = rng.uniform(0.02, 0.3)
        n = int(16000 * rng.uniform(0.4, 0.8))
        x = level * np.sin(2 * np.pi * 150 * np.arange(n) / 16000) + 0.01 * rng.standard_normal(n)
        sf.write(data / f"a{i}.wav", x.astype("float32"), 16000)
        rows.append(dict(id=f"i{i:02d}", file=f"a{i}.wav", speaker=f"s{i % 4}",
                         arousal=round(level / 0.3, 3), dominance=rng.uniform(),
                         valence=rng.uniform()))
    (data / "broken.wav").write_bytes(b"RIFF and nothing else")
    rows.append(dict(id="broken", file="broken.wav", speaker="s0", arousal=0.5, dominance=0.5,
                     valence=0.5))
    pd.DataFrame(rows).to_csv(data / "manifest.csv", index=False)
    (root / "models").mkdir()
    model = make_onnx_model(str(root / "models" / "tiny.onnx"))
    out = root / "out"
    res = audit([model], str(data / "manifest.csv"), "smoke", out=str(out), cache=False,
                n_boot=20, seed=0)
    return root, res, out


def _copy(res: Results) -> Results:
    return Results(json.loads(res.to_json()), dict(res.timings))


# -- 6. documents that always serialise -----------------------------------------------
def test_non_finite_values_become_null_with_a_reason_and_json_stays_strict(audited, tmp_path):
    _, res, _ = audited
    doc = json.loads(res.to_json())
    entry = next(t for t in doc["tests"] if t["measurements"])
    entry["measurements"][0]["value"] = float("inf")
    entry["measurements"][0]["ci"] = [float("nan"), np.float32("-inf")]
    entry["plots"] = {"scatter": {"truth": [0.1, float("inf"), np.float64(0.3)],
                                  "n": np.int64(3)}}
    doc["summary"]["models"]["tiny"]["score"] = float("nan")
    r = Results(doc, {"wall_seconds": float("inf")})
    text = r.to_json()
    # strict JSON: no NaN or Infinity token anywhere
    back = json.loads(text, parse_constant=lambda token: pytest.fail(f"{token} in results.json"))
    json.dumps(r.doc, allow_nan=False)
    m = next(t for t in back["tests"] if t["test"] == entry["test"] and t["model"] == entry["model"]
             and t["dimension"] == entry["dimension"])["measurements"][0]
    assert m["value"] is None and m["ci"] == [None, None]
    assert back["non_finite"]["count"] == 5
    assert "JSON" in back["non_finite"]["reason"]
    places = {p["at"]: p["was"] for p in back["non_finite"]["places"]}
    assert places["summary.models.tiny.score"] == "nan"
    assert any(at.endswith("plots.scatter.truth[1]") and was == "inf" for at, was in places.items())
    assert r.timings["wall_seconds"] is None
    # and the whole folder is written, reports included
    write_results(r, str(tmp_path / "out"))
    assert not r.render_failures
    assert json.loads((tmp_path / "out" / "results.json").read_text())["non_finite"]["count"] == 5
    assert sorted(os.listdir(tmp_path / "out")) == ["junit.xml", "report.html", "results.json",
                                                    "summary.md", "timings.json"]


@pytest.mark.parametrize("threshold, says", [
    ("> 1e999", "no finite limit"),
    ("< -1e400", "no finite limit"),
    ("abs < -0.5", "absolute limit must be positive"),
    ("abs >= 0", "absolute limit must be positive"),
])
def test_thresholds_are_validated_at_suite_load_naming_test_and_metric(tmp_path, threshold, says,
                                                                       capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text(f"tests:\n  - test: correctness_regression\n"
                     f"    thresholds: {{ccc: '> 0.5', mae: '{threshold}'}}\n")
    with pytest.raises(UsageError) as info:
        load_suite(str(suite))
    msg = str(info.value)
    assert says in msg and "tests[0]" in msg and "correctness_regression" in msg \
        and "'mae'" in msg and threshold in msg
    assert main(["run", "-m", "random:gaussian", "--suite", str(suite), "--no-cache",
                 "--out", str(tmp_path / "o")]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    # a meaningful absolute threshold still loads
    suite.write_text("tests:\n  - test: correctness_regression\n    thresholds: {mae: 'abs < 0.2'}\n")
    assert load_suite(str(suite)).checks


def test_a_renderer_that_raises_costs_only_its_report_exit_3(audited, tmp_path, monkeypatch,
                                                           capsys):
    root, _, _ = audited
    from sertest.report import html

    def broken(results):
        raise RuntimeError("renderer exploded\nsecond line")

    monkeypatch.setattr(html, "render", broken)
    monkeypatch.setenv("SERTEST_LOG_DIR", str(tmp_path / "logs"))
    out = tmp_path / "out"
    code = main(["run", "-m", str(root / "models" / "tiny.onnx"), "-d",
                 str(root / "data" / "manifest.csv"), "--suite", "smoke", "--no-cache",
                 "--n-boot", "10", "--out", str(out), "--no-progress"])
    assert code == 3
    err = [line for line in capsys.readouterr().err.splitlines() if "exploded" in line]
    assert len(err) == 1 and "internal error" in err[0]
    assert "html (RuntimeError: renderer exploded)" in err[0] and "results.json" in err[0]
    log = re.search(r"traceback in (\S+\.log)", err[0]).group(1)
    assert "second line" in open(log).read() and "Traceback" in open(log).read()
    # the audit is not lost: results.json and the other reports are there, no html
    assert sorted(os.listdir(out)) == ["junit.xml", "replicates.npz", "results.json",
                                       "summary.md", "timings.json"]
    assert Results.load(str(out)).tests


# -- 7. exit codes and messages ------------------------------------------------------
def test_report_and_compare_on_missing_or_truncated_results_exit_2(audited, tmp_path, capsys):
    _, res, out = audited
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no such file" in capsys.readouterr().err
    cut = tmp_path / "cut"
    cut.mkdir()
    text = (out / "results.json").read_text()
    (cut / "results.json").write_text(text[: len(text) // 2])
    for argv in (["report", str(cut)], ["compare", str(out), str(cut), "--out", str(tmp_path / "c")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert str(cut / "results.json") in err and "truncated" in err
    (cut / "results.json").write_text('{"schema": "something/else"}')
    assert main(["report", str(cut)]) == 2
    assert "not a sertest results document" in capsys.readouterr().err
    (cut / "results.json").write_bytes(b"\xff\xfe\x00garbage")
    assert main(["report", str(cut)]) == 2
    # a damaged timings.json or replicates.npz beside a good results.json: rendered anyway
    good = tmp_path / "good"
    good.mkdir()
    (good / "results.json").write_text(text)
    (good / "timings.json").write_text("{")
    (good / "replicates.npz").write_bytes(b"PK\x03\x04broken")
    assert main(["report", str(good), "--format", "markdown"]) == 0
    assert (good / "summary.md").exists()
    assert main(["report", str(good), "--format", "pdf"]) == 2


def test_internal_errors_exit_3_with_one_line_and_a_log(monkeypatch, tmp_path, capsys):
    import sertest.cli as cli

    def bug(args):
        raise KeyError("a bug\nwith two lines")

    monkeypatch.setattr(cli, "_list", bug)
    monkeypatch.setenv("SERTEST_LOG_DIR", str(tmp_path / "logs"))
    assert main(["list"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "internal error" in err and "KeyError" in err
    log = re.search(r"traceback in (\S+\.log)", err).group(1)
    assert os.path.dirname(log) == str(tmp_path / "logs")
    assert "Traceback" in open(log).read() and "with two lines" in open(log).read()

    def unreadable(args):
        raise PermissionError(13, "Permission denied", "/srv/data/manifest.csv")

    monkeypatch.setattr(cli, "_list", unreadable)
    assert main(["list"]) == 2  # a named file that cannot be read is an input error
    assert capsys.readouterr().err == "sertest: error: /srv/data/manifest.csv: Permission denied\n"


# -- 8. one run, one consistent output folder -----------------------------------------
def _leftovers(folder) -> list[str]:
    return [n for n in os.listdir(folder) if "sertest-tmp" in n or "sertest-old" in n
            or ".tmp" in n]


def test_a_rerun_replaces_the_whole_folder_and_leaves_nothing_behind(audited, tmp_path):
    _, res, _ = audited
    out = tmp_path / "out"
    first = _copy(res)
    write_results(first, str(out))
    assert "report.html" in os.listdir(out)
    second = _copy(res)
    second.doc["seed"] = 7
    write_results(second, str(out), renderers=("markdown",))
    # the first run's report.html and junit.xml are gone with it: no two runs side by side
    assert sorted(os.listdir(out)) == ["results.json", "summary.md", "timings.json"]
    assert json.loads((out / "results.json").read_text())["seed"] == 7
    assert "seed 7" in (out / "summary.md").read_text()
    assert _leftovers(tmp_path) == [] and _leftovers(out) == []
    # the published folder has the permissions a plain mkdir gives (not a private temp dir's)
    (tmp_path / "probe").mkdir()
    assert os.stat(out).st_mode & 0o777 == os.stat(tmp_path / "probe").st_mode & 0o777


def test_a_folder_with_the_users_files_keeps_them(audited, tmp_path, monkeypatch):
    _, res, _ = audited
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    write_results(_copy(res), str(out))
    second = _copy(res)
    second.doc["seed"] = 9
    write_results(second, str(out), renderers=("junit",))
    assert sorted(os.listdir(out)) == ["junit.xml", "notes.txt", "results.json", "timings.json"]
    assert (out / "notes.txt").read_text() == "keep me"
    # --out . (the working folder) is never swapped away either
    monkeypatch.chdir(out)
    write_results(_copy(res), ".", renderers=("markdown",))
    assert sorted(os.listdir(out)) == ["notes.txt", "results.json", "summary.md", "timings.json"]
    assert _leftovers(out) == [] and _leftovers(tmp_path) == []


def test_a_run_killed_while_writing_reports_leaves_the_previous_run_intact(audited, tmp_path):
    _, res, _ = audited
    out = tmp_path / "out"
    write_results(_copy(res), str(out))
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {REPO!r})
        from sertest.results import Results
        from sertest.report import markdown, write_results
        def killed(results):
            os.kill(os.getpid(), signal.SIGKILL)   # killed while writing the reports
        markdown.render = killed
        res = Results.load({str(out)!r})
        res.doc["seed"] = 99
        write_results(res, {str(out)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    # the reader still sees the previous run's files, all of them, unchanged
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before
    stale = _leftovers(tmp_path)
    assert len(stale) == 1 and "sertest-tmp" in stale[0]
    assert os.listdir(tmp_path / stale[0])  # the killed run had written results.json there
    # a legacy NAME.tmpPID file of a dead process inside the folder, too
    (out / "report.html.tmp999999").write_text("half")
    write_results(_copy(res), str(out), renderers=("markdown",))  # the next run cleans up
    assert _leftovers(tmp_path) == [] and _leftovers(out) == []


def test_clean_stale_keeps_the_files_of_a_live_run(tmp_path):
    live = tmp_path / f".out.sertest-tmp-{os.getppid()}-abcd"
    dead = tmp_path / ".out.sertest-tmp-999999-abcd"
    other = tmp_path / "results.json.tmp999999"
    user = tmp_path / "data.tmp999999"  # not a file sertest writes: never touched
    for p in (live, dead):
        p.mkdir()
    other.write_text("x")
    user.write_text("x")
    removed = clean_stale(str(tmp_path))
    assert sorted(os.path.basename(p) for p in removed) == sorted([dead.name, other.name])
    assert live.exists() and user.exists()


def test_two_concurrent_runs_into_one_folder_never_mix(audited, tmp_path):
    _, res, _ = audited
    out = tmp_path / "out"
    docs = {}
    for seed in (1, 2):
        r = _copy(res)
        r.doc["seed"] = seed
        docs[seed] = r
    stop = threading.Event()
    mixed, seen = [], set()

    def reader():
        while not stop.is_set():
            try:
                fd = os.open(out, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                with open(os.open("results.json", os.O_RDONLY, dir_fd=fd)) as fh:
                    a = json.load(fh)["seed"]
                with open(os.open("summary.md", os.O_RDONLY, dir_fd=fd)) as fh:
                    b = int(re.search(r"seed (\d+)", fh.read()).group(1))
            except (FileNotFoundError, ValueError, AttributeError):
                continue
            finally:
                os.close(fd)
            seen.add(a)
            if a != b:
                mixed.append((a, b))

    errors = []

    def writer(seed):
        try:
            for _ in range(6):
                write_results(docs[seed], str(out), renderers=("markdown", "junit"))
        except Exception as exc:  # noqa: BLE001 - a thread's failure must fail the test
            errors.append(exc)

    t_read = threading.Thread(target=reader)
    t_read.start()
    writers = [threading.Thread(target=writer, args=(s,)) for s in (1, 2)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    t_read.join()
    assert not errors  # neither run lost its staging folder to the other's clean-up
    assert not mixed
    assert seen  # the reader did see complete folders
    final = json.loads((out / "results.json").read_text())["seed"]
    assert f"seed {final}" in (out / "summary.md").read_text()
    assert sorted(os.listdir(out)) == ["junit.xml", "results.json", "summary.md", "timings.json"]
    assert _leftovers(tmp_path) == []


def test_output_folder_left_without_commit_changes_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("{}")
    with pytest.raises(RuntimeError):
        with OutputFolder(str(out)) as folder:
            with open(folder.path("results.json"), "w") as fh:
                fh.write("new")
            raise RuntimeError("rendering failed before commit")
    assert (out / "results.json").read_text() == "{}"
    assert _leftovers(tmp_path) == []


# -- 9. YAML alias limits ---------------------------------------------------------------
def test_a_suite_whose_aliases_expand_hugely_is_refused_at_once(tmp_path):
    levels = ['  - &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"  - &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    text = "version:\n" + "\n".join(levels) + "\ndescription: *a9\ntests: [correctness_regression]\n"
    assert len(text) < 1024  # 9^10 = 3.5e9 nodes once expanded
    suite = tmp_path / "lol.yaml"
    suite.write_text(text)
    t0 = time.perf_counter()
    with pytest.raises(UsageError, match="aliases expand to more than 100,000 nodes"):
        load_suite(str(suite))
    assert time.perf_counter() - t0 < 5.0
    # many aliases, each small
    many = "version: &v 1\ndescription: [" + ", ".join(["*v"] * 2000) + "]\ntests: [correctness_regression]\n"
    suite.write_text(many)
    with pytest.raises(UsageError, match="more than 1000 YAML aliases"):
        load_suite(str(suite))
    # a node that contains itself
    suite.write_text("description: &d [*d]\ntests: [correctness_regression]\n")
    with pytest.raises(UsageError, match="refers to the node that contains it"):
        load_suite(str(suite))
    # ordinary anchors (shared thresholds) are still fine
    suite.write_text("tests:\n  - test: correctness_regression\n    thresholds: &t {mae: '< 0.2'}\n"
                     "  - test: correctness_regression\n    name: again\n    thresholds: *t\n")
    assert len(load_suite(str(suite)).checks) == 2


# -- 9. summary.md safe as a pull-request comment ----------------------------------------
HOSTILE = "@acme/security-team <img src=x onerror=alert(1)> \x1b[31mred\x07 \u202egnp.exe\u200b|x"


def test_summary_md_has_no_mentions_control_characters_or_raw_html(audited):
    _, res, _ = audited
    doc = json.loads(res.to_json())
    doc["suite"]["name"] = HOSTILE
    for m in doc["models"]:
        if m["name"] == "tiny":
            m["name"] = HOSTILE
    for t in doc["tests"]:
        if t["model"] == "tiny":
            t["model"] = HOSTILE
            t["test"] = "@someone " + t["test"]
    doc["summary"]["models"][HOSTILE] = doc["summary"]["models"].pop("tiny")
    doc["items"]["errors"].append({"id": "@octocat", "file": "x.wav", "stage": "<b>decode</b>",
                                   "error": "cc @acme/team\r\n<script>alert(1)</script>",
                                   "condition": None, "model": None})
    text = markdown.render(Results(doc))
    assert HOSTILE not in text
    assert not re.search(r"(?<![\w`])@[A-Za-z0-9]", text), "a mention would notify someone"
    assert "@\u2060acme/security-team" in text  # still legible
    bad = [c for c in text if c != "\n" and unicodedata.category(c) in ("Cc", "Cf")
           and c != "\u2060"]
    assert not bad
    # every "<" that is not our own <details>/<summary> markup is escaped
    for m in re.finditer(r"<", text):
        assert text[m.start() - 1] == "\\" or text.startswith(("<details>", "<summary>", "</summary>",
                                                               "</details>"), m.start())
    assert "\\u001b" in text and "\\u202e" in text  # shown, not obeyed
    # nothing broke out of its cell: every row has as many cells as its table's header
    width = None
    for line in text.splitlines():
        cells = len(re.findall(r"(?<!\\)\|", line))
        if not line.startswith("|"):
            width = None
        elif width is None:
            width = cells
        else:
            assert cells == width, line


# -- 9. paths relative to the data root or the model folder --------------------------------
def test_outputs_carry_no_absolute_paths_of_this_machine(audited):
    root, res, out = audited
    machine = {str(root), os.path.realpath(root)}
    for name in ("results.json", "summary.md", "junit.xml", "report.html"):
        text = (out / name).read_text(encoding="utf-8")
        assert not any(p in text for p in machine), name
    doc = json.loads((out / "results.json").read_text())
    assert doc["dataset"]["source"] == "manifest.csv"
    (model,) = [m for m in doc["models"] if m["name"] == "tiny"]
    assert model["info"]["path"] == "tiny.onnx"  # the file's name ...
    assert re.search(r"[0-9a-f]{32}", model["fingerprint"])  # ... and its digest
    (err,) = doc["items"]["errors"]
    assert err["file"] == "broken.wav" and err["error"].startswith("broken.wav: ")
    # the roots stay on this machine, in timings.json, so a report can find the audio again
    timings = json.loads((out / "timings.json").read_text())
    assert timings["paths"]["data_root"] == str(root / "data")
    assert Results.load(str(out)).data_root == str(root / "data")


def test_an_output_folder_that_cannot_be_written_keeps_results_json_elsewhere(audited, tmp_path,
                                                                             monkeypatch):
    from sertest.errors import OutputError

    _, res, _ = audited
    monkeypatch.setenv("SERTEST_LOG_DIR", str(tmp_path / "logs"))
    (tmp_path / "a-file").write_text("not a folder")
    r = _copy(res)
    with pytest.raises(OutputError) as info:
        write_results(r, str(tmp_path / "a-file" / "out"))
    kept = re.search(r"results.json kept as (\S+\.json)", str(info.value)).group(1)
    assert os.path.dirname(kept) == str(tmp_path / "logs")
    assert json.loads(open(kept).read()) == json.loads(r.to_json())


def test_results_json_is_encoded_in_blocks_not_one_list_of_pieces():
    """A many-model document has millions of pieces of text; ``json.dumps`` lists them all
    before joining (13 times the text's size in memory, 155 MB for the 14 MB document of a
    7-model audit).  ``to_json`` joins them in blocks (2 x the text measured: the blocks
    and the text) and writes the layout of json's indenting encoder, flattened."""
    import tracemalloc

    from sertest.results import SCHEMA, Results
    from tests.test_json_text import flattened_dumps

    doc = {"schema": SCHEMA, "models": [], "tests": [
        {"test": f"t{i}", "measurements": [{"value": 0.5 + j / 1e3, "ci": [0.1, 0.9],
                                            "slice": {"group": "f"}} for j in range(20)]}
        for i in range(2000)]}
    res = Results(doc)
    tracemalloc.start()
    try:
        text = res.to_json()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * len(text), peak / len(text)
    assert text == flattened_dumps(res.doc) + "\n"
