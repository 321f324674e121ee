"""Two jobs publishing to one --output, interleaved at every step of their publish: one wins whole.

Each job is launched as the launcher does it (output_claim.prepare_output: the files check, the lease
on its run id with its base) and staged as its sinks would have left it (a few small files per output,
the staged summary and manifest); then the two publish calls run in two threads, step by step
(tests/helpers/publish_steps.Interleaved holds each before every copy, rename, delete, file written
and compare-and-swap): job A does `a` steps, job B `b` steps, A the rest, B the rest, for every a
and b (on the slower GCS emulator: A paused at every third step, B whole). Afterwards the
commit record lists exactly one job's complete outputs, every listed file exists with the bytes that
job staged, nothing of the loser or of the replaced run is left under final names, the loser was
told (PublishRefused), and a user's file in an output folder is still there.

With --if_output_exists=fail both jobs launch on an empty output; the same holds: the check is the
commit's, not only the launch's.

The emulator ignores `ifGenerationMatch`; tests/helpers/gcs_emulator.py makes it honour the
precondition on uploads as GCS does, so on GCS this tests the protocol, not GCS's own atomicity.
"""

from __future__ import annotations

import json

import pytest
from apache_beam.io.filesystems import FileSystems

from pipeline.io.publishing import results
from pipeline.io.publishing import output_claim, publish
from pipeline.run import parse_args
from tests.helpers.gcs_emulator import restore, snapshot
from tests.helpers.publish_steps import CrashAfter, Interleaved

OUTPUTS = {"predictions": 2, "metrics": 1, "ledger": 1, "rejected_rows": 1}  # staged files per output
USER_FILE = "metrics/q3_notes.txt"


def launch(root: str, source: str, run_id: str, mode: str):
    """A launch (prepare_output) and what its sinks staged: (params, publish id, written, staged bytes)."""
    params = parse_args([f"--input={source}", f"--output={root}", f"--run_id={run_id}",
                         f"--if_output_exists={mode}"])[0]
    output_claim.prepare_output(params)
    publish_id = output_claim.claimed_publish_id(params)
    written, staged = {}, {}
    for name, count in OUTPUTS.items():
        written[name] = [f"{root}/_staging/{run_id}/{name}/part-{i:05d}-of-{count:05d}.parquet" for i in range(count)]
        for path in written[name]:
            staged[f"{name}/{publish.final_name(path, publish_id)}"] = f"{run_id}:{path}".encode()
            _write(path, staged[f"{name}/{publish.final_name(path, publish_id)}"])
    _write(f"{root}/_staging/{run_id}/summary.json", json.dumps({"run_id": run_id}).encode())
    _write(f"{root}/_staging/{run_id}/manifest.json", json.dumps({"run_id": run_id}).encode())
    return params, publish_id, written, staged


def _write(path: str, data: bytes) -> None:
    with FileSystems.create(path, compression_type="uncompressed") as handle:
        handle.write(data)


@pytest.fixture(params=["local", "gcs"])
def root(request, tmp_path):
    if request.param == "gcs":
        return f"{request.getfixturevalue('gcs')}/out"
    return str(tmp_path / "out")


@pytest.fixture(params=["replace", "fail"])
def two_jobs(request, root, tmp_path, monkeypatch):
    """A previous run published (with replace) and a user's file beside it; jobs A and B launched."""
    source = tmp_path / "rows.csv"
    source.write_text("year,date,shop_id,sales,attr1,attr2,attr3\n")
    previous = None
    if request.param == "replace":
        params, publish_id, written, _ = launch(root, str(source), "previous", "replace")
        publish.publish(params, publish_id, written)
        previous = set(snapshot(root))
        _write(f"{root}/{USER_FILE}", b"a user's notes")  # no record lists it: it is not ours
    jobs = {name: launch(root, str(source), f"job-{name}", request.param) for name in "AB"}
    return {"root": root, "jobs": jobs, "start": snapshot(root), "previous": previous, "mode": request.param}


def check_one_winner(root: str, jobs: dict, outcome: dict, previous: set | None, label) -> str:
    """The record lists exactly one job's complete outputs, all there; the other job lost, and says so."""
    record = results.read_summary(root)
    winners = [name for name, job in jobs.items() if record["published"]["publish_id"] == job[1]]
    assert len(winners) == 1, label
    winner, loser = winners[0], ({"A", "B"} - set(winners)).pop()
    assert record["run_id"] == f"job-{winner}", label
    assert outcome[winner]["error"] is None, (label, outcome[winner]["error"])
    assert isinstance(outcome[loser]["error"], publish.PublishRefused), (label, outcome[loser]["error"])
    staged = jobs[winner][3]
    listed = {f"{name}/{file}" for name in OUTPUTS for file in publish.published_files(record, name)}
    assert listed == set(staged), label  # complete: every file the winner's sinks wrote
    state = snapshot(root)
    assert all(state.get(path) == data for path, data in staged.items()), label  # every listed file is there
    under_final_names = {path for path in state if path.split("/")[0] in OUTPUTS}
    assert under_final_names - {USER_FILE} == listed, label  # nothing of the loser or the replaced run
    assert json.loads(state["manifest.json"]) == {"run_id": f"job-{winner}"}, label
    if previous is not None:
        assert state[USER_FILE] == b"a user's notes", label
    assert not [path for path in state if path.startswith(f"_staging/job-{winner}/")], label
    loser_lease = json.loads(state[f"_staging/job-{loser}/{publish.LEASE_FILE}"])
    assert loser_lease.get("released"), label  # its run id is free for a relaunch
    return winner


def interleave(monkeypatch, root: str, jobs: dict, a: int | None, b: int | None) -> dict:
    """A does `a` steps, B `b` steps, then A and B run to their ends, each in its own thread."""
    with monkeypatch.context() as patch:
        steps = Interleaved(patch, root)
        for name, (params, publish_id, written, _) in jobs.items():
            steps.start(name, lambda p=params, i=publish_id, w=written: publish.publish(p, i, w))
        steps.run("A", a)
        steps.run("B", b)
        return {"A": steps.run("A", None), "B": steps.run("B", None)}


def test_two_jobs_on_one_output_one_wins_whole_at_every_interleaving(two_jobs, monkeypatch):
    root, jobs, start = two_jobs["root"], two_jobs["jobs"], two_jobs["start"]
    with monkeypatch.context() as patch:  # how many steps a publish takes alone
        counter = CrashAfter(patch, root, limit=None)
        publish.publish(*jobs["A"][:3])
    alone = len(counter.steps)
    assert alone >= 8, counter.steps
    restore(root, start)
    if root.startswith("gs://"):  # each emulator round trip is slow: A paused at every third step, B whole
        pairs = [(a, None) for a in range(0, alone + 1, 3)] + [(alone, None)]
    else:
        pairs = [(a, b) for a in range(alone + 1) for b in range(alone + 1)] + [(None, None)]
    winners = set()
    for a, b in pairs:
        restore(root, start)
        outcome = interleave(monkeypatch, root, jobs, a, b)
        winners.add(check_one_winner(root, jobs, outcome, two_jobs["previous"], (a, b)))
    assert winners == {"A", "B"}  # the interleavings cover both orders of commit


def test_a_second_launch_with_a_live_run_id_is_refused_and_deletes_nothing(two_jobs):
    """Job A's launcher is alive (here: a lease naming a running process of this host, the test's
    parent); a second launch with A's run id is refused before it touches A's staging folder."""
    import os

    root, (params, _, _, _) = two_jobs["root"], two_jobs["jobs"]["A"]
    lease_path = f"{root}/_staging/job-A/{publish.LEASE_FILE}"
    lease = json.loads(two_jobs["start"][f"_staging/job-A/{publish.LEASE_FILE}"]) | {"pid": os.getppid()}
    _write(lease_path, json.dumps(lease).encode())
    before = snapshot(root)
    with pytest.raises(output_claim.ParameterError) as refused:
        output_claim.prepare_output(params)
    assert refused.value.name == "run_id" and str(os.getppid()) in str(refused.value)
    assert snapshot(root) == before
