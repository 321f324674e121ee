"""Publishing survives a crash after any single step, and a retry of the step ends as a clean publish.

Run "previous" is published; run "new" is staged, its publish step crashed before doing anything (a
real pipeline run, with the crash injected). From that state, for every k, publish runs with a
crash injected after its k-th filesystem operation (each copy, each rename, each delete, each file
written; a GCS rename counts as its copy and its delete, a recursive GCS delete as one delete per
object, as Beam performs them); then the state is checked (a reader sees exactly one run: the
previous one before the commit, the new one after), the step is run again as Dataflow would retry
it, and the result must equal a clean publish byte for byte. Locally and on the GCS emulator.

The matrix (steps x backends) is printed and written to $PUBLISH_MATRIX when that is set.
"""

from __future__ import annotations

import os
import pickle

import pytest
from apache_beam.io.filesystems import FileSystems

from pipeline.io import publish, results
from tests.helpers.pipeline_runs import make_rows, run_pipeline
from tests.helpers.gcs_emulator import restore, snapshot, write_parquet

OUTPUTS = ("predictions", "metrics", "ledger", "rejected_rows")
ARGS = ("--model=ridge", "--window_size=3", "--min_train_rows=10")
YEARS = [2001, 2002, 2003, 2004]
MATRIX: dict[str, list[tuple[int, str, str, str]]] = {}


class Crash(Exception):
    """The injected crash."""


class CrashAfter:
    """Wraps the FileSystems operations that change anything; raises Crash before operation `limit` + 1.

    Batched calls run one file at a time, so a crash can fall between two files of one batch, as
    on GCS, where a batch is not atomic. `limit=None` only records the steps."""

    def __init__(self, monkeypatch, root: str, limit: int | None):
        self.root, self.limit, self.steps = root.rstrip("/") + "/", limit, []
        self._copy, self._rename, self._delete, self._create = (
            FileSystems.copy, FileSystems.rename, FileSystems.delete, FileSystems.create)
        monkeypatch.setattr(FileSystems, "copy", staticmethod(self.copy))
        monkeypatch.setattr(FileSystems, "rename", staticmethod(self.rename))
        monkeypatch.setattr(FileSystems, "delete", staticmethod(self.delete))
        monkeypatch.setattr(FileSystems, "create", staticmethod(self.create))

    def _step(self, label: str, operation):
        if self.limit is not None and len(self.steps) >= self.limit:
            raise Crash(f"injected crash after step {len(self.steps)}")
        operation()
        self.steps.append(label)

    def _short(self, path: str) -> str:
        return path[len(self.root):] if path.startswith(self.root) else path

    def copy(self, sources, targets):
        for source, target in zip(sources, targets):
            self._step(f"copy {self._short(source)} -> {self._short(target)}",
                       lambda s=source, t=target: self._copy([s], [t]))

    def rename(self, sources, targets):
        for source, target in zip(sources, targets):
            if FileSystems.get_scheme(source) == "gs":  # what Beam's GCS rename does: copy, then delete
                self._step(f"rename (copy) {self._short(source)} -> {self._short(target)}",
                           lambda s=source, t=target: self._copy([s], [t]))
                self._step(f"rename (delete) {self._short(source)}", lambda s=source: self._delete([s]))
            else:
                self._step(f"rename {self._short(source)} -> {self._short(target)}",
                           lambda s=source, t=target: self._rename([s], [t]))

    def delete(self, paths):
        for path in paths:
            if FileSystems.get_scheme(path) == "gs" and path.endswith("/"):  # recursive: object by object
                for match in FileSystems.match([path + "**"])[0].metadata_list:
                    self._step(f"delete {self._short(match.path)}", lambda p=match.path: self._delete([p]))
            else:
                self._step(f"delete {self._short(path)}", lambda p=path: self._delete([p]))

    def create(self, path, *args, **kwargs):
        handle = self._create(path, *args, **kwargs)
        injector = self

        class Counted:  # the file exists once closed: that is the step
            def write(self, data):
                return handle.write(data)

            def close(self):
                injector._step(f"write {injector._short(path)}", handle.close)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.close()

        return Counted()


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
    """(root, params, publish_id, state): "previous" published, "new" staged, its publish crashed at once."""
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

    def crash_at_once(params, publish_id):  # runs on the (in-process) worker, a pickled copy
        with open(calls, "wb") as handle:
            pickle.dump((params, publish_id), handle)
        with monkeypatch.context() as patch:
            CrashAfter(patch, root, limit=0)
            return original(params, publish_id)

    with monkeypatch.context() as patch:
        patch.setattr(publish, "publish", crash_at_once)
        with pytest.raises(Exception, match="injected crash"):
            run_pipeline(root, f"--input={source}", *ARGS, "--run_id=new", "--seed=5")
    # The run that never completed left the previous outputs exactly as they were.
    state = snapshot(root)
    assert {k: v for k, v in state.items() if not k.startswith("_staging/")} == previous
    assert any(k.startswith("_staging/new/predictions/part-") for k in state)
    with open(calls, "rb") as handle:
        params, publish_id = pickle.load(handle)
    return request.param, root, params, publish_id, state, local_folders(root)



def test_publish_after_a_crash_at_every_step_ends_as_a_clean_publish(staged, monkeypatch):
    backend, root, params, publish_id, start, start_folders = staged
    previous_view = reader_view(root)
    assert all(previous_view[name] for name in OUTPUTS) and b'"previous"' in previous_view["summary"]
    previous_manifest = _read(f"{root}/manifest.json")

    with monkeypatch.context() as patch:  # the clean publish, counting its steps
        counter = CrashAfter(patch, root, limit=None)
        publish.publish(params, publish_id)
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
                    publish.publish(params, publish_id)
            else:
                publish.publish(params, publish_id)
        # At the crash: one run, whole. Before the commit the previous one, untouched; after it the new one.
        view, manifest = reader_view(root), _read(f"{root}/manifest.json")
        if view == previous_view:
            seen = "previous"
            assert manifest == previous_manifest, k
        else:
            seen = "new"
            assert view == new_view, (k, steps[k - 1])
            assert manifest in (previous_manifest, new_manifest), k
        publish.publish(params, publish_id)  # the retry
        retried = snapshot(root)
        assert retried == clean, (k, sorted(set(retried) ^ set(clean)))
        assert local_folders(root) == clean_folders, k
        rows.append((k, steps[k - 1] if k else "(before any step)", seen, "pass"))

    # The commit is one step: every step before it leaves the previous run, every one from it on the new.
    seen = [row[2] for row in rows]
    commit = seen.index("new")
    assert seen == ["previous"] * commit + ["new"] * (len(seen) - commit)
    assert "summary.json" in rows[commit][1] and all(s.startswith("copy ") for s in steps[:commit - 2])
    MATRIX[backend] = rows
    _report_matrix()


def test_a_relaunch_after_a_crashed_publish_cleans_up_the_crashed_attempt(staged, monkeypatch):
    """A job that crashed in its publish and was never retried; a later job publishes over it: none of
    the crashed attempt's copied files stay, whatever step it stopped at."""
    backend, root, params, publish_id, start, _ = staged
    staging = {k: v for k, v in start.items() if k.startswith("_staging/")}
    with monkeypatch.context() as patch:
        steps = CrashAfter(patch, root, limit=None).steps
        publish.publish(params, publish_id)
    restore(root, start)
    publish.publish(params, "relaunch")
    clean = snapshot(root)
    # Every step locally; every third on the (slower) emulator, the commit among them.
    for k in range(1, len(steps), 1 if backend == "local" else 3):
        restore(root, start)
        with monkeypatch.context() as patch:
            counter = CrashAfter(patch, root, limit=k)
            with pytest.raises(Crash):
                publish.publish(params, publish_id)
        # The relaunch stages the same run again (prepare_output clears its staging first).
        for relative, data in staging.items():
            with FileSystems.create(f"{root}/{relative}", compression_type="uncompressed") as handle:
                handle.write(data)
        publish.publish(params, "relaunch")
        assert snapshot(root) == clean, (k, counter.steps[-1])


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
