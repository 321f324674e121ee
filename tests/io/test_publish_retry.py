"""Publishing survives a crash after any single step, and a retry of the step ends as a clean publish.

Run "previous" is published; run "new" is staged, its publish step crashed before doing anything (a
real pipeline run, with the crash injected). From that state, for every k, publish runs with a
crash injected after its k-th filesystem operation (each copy, each rename, each delete, each file
written, the compare-and-swap of the commit record; a GCS rename counts as its copy and its delete,
as Beam performs it); then the state is checked (a reader sees exactly one run: the
previous one before the commit, the new one after), the step is run again as Dataflow would retry
it, and the result must equal a clean publish byte for byte. Locally and on the GCS emulator.

The matrix (steps x backends) is printed and written to $PUBLISH_MATRIX when that is set.
"""

from __future__ import annotations

import json
import os
import pickle

import pytest
from apache_beam.io.filesystems import FileSystems

from pipeline.io.publishing import results
from pipeline.io.publishing import output_claim, publish
from tests.helpers.pipeline_runs import make_rows, run_pipeline
from tests.helpers.gcs_emulator import restore, snapshot, write_parquet
from tests.helpers.publish_steps import Crash, CrashAfter

OUTPUTS = ("predictions", "metrics", "ledger", "rejected_rows")
ARGS = ("--model=ridge", "--window_size=3", "--min_train_rows=10")
YEARS = [2001, 2002, 2003, 2004]
MATRIX: dict[str, list[tuple[int, str, str, str]]] = {}


def reader_view(root: str) -> dict:
    """What a reader following the commit record sees: summary.json and each listed file's bytes."""
    view = {"summary": _read(f"{root}/summary.json")}
    for name in OUTPUTS:
        view[name] = [(os.path.basename(path), _read(path)) for path in results.published_parts(root, name)]
    return view


def _read(path: str) -> bytes | None:
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path, compression_type="uncompressed") as handle:
        return handle.read()


def local_folders(root: str) -> set[str] | None:
    if FileSystems.get_scheme(root) is not None:
        return None
    return {os.path.relpath(folder, root) for folder, _, _ in os.walk(root)}


@pytest.fixture(params=["local", "gcs"])
def staged(request, tmp_path, monkeypatch):
    """(backend, root, params, (publish_id, written), state, folders): "previous" published, "new" staged, its publish crashed at once."""
    if request.param == "gcs":
        prefix = request.getfixturevalue("gcs")
        root = f"{prefix}/out"
        source = write_parquet(f"{prefix}/rows.parquet", make_rows({"A": YEARS, "B": YEARS}, 12))
    else:
        root, source = str(tmp_path / "out"), str(tmp_path / "rows.parquet")
        make_rows({"A": YEARS, "B": YEARS}, 12).to_parquet(source, index=False)
    run_pipeline(root, f"--input={source}", *ARGS, "--run_id=previous")
    previous = snapshot(root)

    calls, original = str(tmp_path / "publish_call.pickle"), publish.publish

    def crash_at_once(params, publish_id, written, tables=None):  # on the (in-process) worker, a pickled copy
        with open(calls, "wb") as handle:
            pickle.dump((params, publish_id, written), handle)
        with monkeypatch.context() as patch:
            CrashAfter(patch, root, limit=0)
            return original(params, publish_id, written)

    with monkeypatch.context() as patch:
        patch.setattr(publish, "publish", crash_at_once)
        with pytest.raises(Exception, match="injected crash"):
            run_pipeline(root, f"--input={source}", *ARGS, "--run_id=new", "--seed=5")
    # The run that never completed left the previous outputs exactly as they were.
    state = snapshot(root)
    assert {k: v for k, v in state.items() if not k.startswith("_staging/")} == previous
    assert any(k.startswith("_staging/new/predictions/part-") for k in state)
    with open(calls, "rb") as handle:
        params, publish_id, written = pickle.load(handle)
    return request.param, root, params, (publish_id, written), state, local_folders(root)



def test_publish_after_a_crash_at_every_step_ends_as_a_clean_publish(staged, monkeypatch):
    backend, root, params, job, start, start_folders = staged
    previous_view = reader_view(root)
    assert all(previous_view[name] for name in OUTPUTS) and b'"previous"' in previous_view["summary"]
    previous_manifest = _read(f"{root}/manifest.json")

    with monkeypatch.context() as patch:  # the clean publish, counting its steps
        counter = CrashAfter(patch, root, limit=None)
        publish.publish(params, *job)
    steps, clean, clean_folders = counter.steps, snapshot(root), local_folders(root)
    new_view, new_manifest = reader_view(root), _read(f"{root}/manifest.json")
    assert b'"new"' in new_view["summary"] and all(new_view[name] for name in OUTPUTS)
    assert not [path for path in clean if path.startswith("_staging/") or path == "report.html"]
    assert clean_folders is None or not any(f.startswith("_staging") for f in clean_folders)
    assert len(steps) >= 12, steps

    rows = []
    for k in range(len(steps) + 1):
        restore(root, start)
        assert local_folders(root) == start_folders
        with monkeypatch.context() as patch:
            CrashAfter(patch, root, limit=k)
            if k < len(steps):
                with pytest.raises(Crash):
                    publish.publish(params, *job)
            else:
                publish.publish(params, *job)
        # At the crash: one run, whole. Before the commit the previous one, untouched; after it the new one.
        view, manifest = reader_view(root), _read(f"{root}/manifest.json")
        if view == previous_view:
            seen = "previous"
            assert manifest == previous_manifest, k
        else:
            seen = "new"
            assert view == new_view, (k, steps[k - 1])
            assert manifest in (previous_manifest, new_manifest), k
        publish.publish(params, *job)  # the retry
        retried = snapshot(root)
        assert retried == clean, (k, sorted(set(retried) ^ set(clean)))
        assert local_folders(root) == clean_folders, k
        rows.append((k, steps[k - 1] if k else "(before any step)", seen, "pass"))

    # The commit is one step: every step before it leaves the previous run, every one from it on the new.
    seen = [row[2] for row in rows]
    commit = seen.index("new")
    assert seen == ["previous"] * commit + ["new"] * (len(seen) - commit)
    # Before it: the note of the record (in the staging folder), then only copies under new names.
    assert "summary.json" in rows[commit][1] and rows[commit][1].startswith("swap ")
    assert steps[0] == "write _staging/new/commit-summary.json", steps[0]
    assert all(s.startswith("copy ") for s in steps[1:commit - 1]) and commit - 1 > 1
    MATRIX[backend] = rows
    _report_matrix()


def test_a_relaunch_after_a_crashed_publish_cleans_up_the_crashed_attempt(staged, monkeypatch):
    """A job that crashed in its publish and was never retried; a later launch with the same run id takes
    its lease over (output_claim.prepare_output) and publishes: none of the crashed attempt's copied
    files stay, whatever step it stopped at, and the end state is that of a clean relaunch."""
    backend, root, params, job, start, _ = staged
    staging = {k: v for k, v in start.items() if k.startswith("_staging/") and not k.endswith(publish.LEASE_FILE)}
    with monkeypatch.context() as patch:
        steps = CrashAfter(patch, root, limit=None).steps
        publish.publish(params, *job)

    previous_id = json.loads(start["summary.json"])["published"]["publish_id"]

    def relaunch() -> dict[str, bytes]:
        output_claim.prepare_output(params)  # the crashed job's lease is dead: its launcher has returned
        relaunch_id = output_claim.claimed_publish_id(params)
        assert relaunch_id != job[0]
        for relative, data in staging.items():  # the relaunch stages the same run again
            with FileSystems.create(f"{root}/{relative}", compression_type="uncompressed") as handle:
                handle.write(data)
        publish.publish(params, relaunch_id, job[1])
        state = {k.replace(relaunch_id, "<id>"): v.replace(relaunch_id.encode(), b"<id>")
                 for k, v in snapshot(root).items()}
        record = json.loads(state["summary.json"])  # which record it replaced depends on the crash point
        # the previous run's record, or the crashed attempt's when it had committed before it died
        assert record["published"].pop("replaced")["publish_id"] in (previous_id, job[0])
        state["summary.json"] = json.dumps(record).encode()
        return state

    restore(root, start)
    clean = relaunch()
    # Nothing of the crashed attempt (the restaged manifest names the files under its id: the same run)
    assert not [k for k, v in clean.items() if job[0] in k or (job[0].encode() in v and k != "manifest.json")]
    # Every step locally; every third on the (slower) emulator, the commit among them.
    for k in range(1, len(steps), 1 if backend == "local" else 3):
        restore(root, start)
        with monkeypatch.context() as patch:
            counter = CrashAfter(patch, root, limit=k)
            with pytest.raises(Crash):
                publish.publish(params, *job)
        assert relaunch() == clean, (k, counter.steps[-1])


def _report_matrix() -> None:
    lines = []
    for backend, rows in MATRIX.items():
        lines += [f"\n{backend}: {len(rows)} crash points", "| k | crash after | reader sees | retry = clean |",
                  "|---|---|---|---|"]
        lines += [f"| {k} | {label} | {seen} | {result} |" for k, label, seen, result in rows]
    text = "\n".join(lines)
    print(text)
    if os.environ.get("PUBLISH_MATRIX"):
        with open(os.environ["PUBLISH_MATRIX"], "w") as handle:
            handle.write(text + "\n")


def test_published_names_carry_the_publish_id():
    assert publish.final_name("/tmp/x/_staging/r/predictions/part-00000-of-00002.parquet", "abcd1234") == \
        "part-abcd1234-00000-of-00002.parquet"
    assert publish.new_publish_id() != publish.new_publish_id()
