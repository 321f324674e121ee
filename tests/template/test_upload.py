"""What Cloud Build gets: `gcloud builds submit` uploads the tree without .git (.gcloudignore), and
CI tests exactly that kind of tree (`.ci/run` runs `make test` in a `git archive` export, with the
commit in $PIPELINE_GIT_COMMIT as cloudbuild.yaml's tests step passes it)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from tests.helpers import ROOT

# Left in a work tree by `make test`, `make run` and the tests: never uploaded.
BUILT_HERE = (".venv/bin/python", ".venv-image/abc/.complete", "output/sample/summary.json",
              "pipeline/__pycache__/run.cpython-311.pyc", ".pytest_cache/v/cache/lastfailed",
              ".hypothesis/examples/x", "bench/results/20260101.md", "many_models_pipeline.egg-info/PKG-INFO")


def _git(*args: str, cwd: str = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> set[str]:
    """The committed sources: `git ls-files` in a checkout; in an export (what CI tests, no .git), every
    file git would track there, read through a throwaway git directory (git honours .gitignore)."""
    if os.path.exists(os.path.join(ROOT, ".git")):
        return set(_git("ls-files", "-z").split("\0")) - {""}
    scratch = tmp_path_factory.mktemp("export-git")
    _git("init", "--quiet", str(scratch))
    git_dir = str(scratch / ".git")
    listed = _git(f"--git-dir={git_dir}", f"--work-tree={ROOT}", "ls-files", "--others", "--exclude-standard", "-z")
    return set(listed.split("\0")) - {""}


def _copy(files: set[str], target) -> None:
    for name in files:
        os.makedirs(os.path.dirname(target / name), exist_ok=True)
        shutil.copy(os.path.join(ROOT, name), target / name)


def test_gcloud_uploads_the_tracked_sources_and_nothing_built_here(tracked, tmp_path, gcloud, gcloud_env):
    tree = tmp_path / "tree"
    _copy(tracked, tree)
    (tree / ".git").mkdir()
    (tree / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    for name in BUILT_HERE:
        os.makedirs(os.path.dirname(tree / name), exist_ok=True)
        (tree / name).write_text("x")
    listed = subprocess.run([gcloud, "meta", "list-files-for-upload", str(tree)], capture_output=True, text=True,
                            timeout=120, env=gcloud_env)
    assert listed.returncode == 0, listed.stderr
    uploaded = {line.strip() for line in listed.stdout.splitlines() if line.strip()}
    assert uploaded == tracked - {".gcloudignore", ".gitignore"}
    assert {"cloudbuild.yaml", "Dockerfile", "Makefile", "requirements.txt", "requirements-dev.txt",
            ".ci/run", ".ci/cloudbuild-tests", "metadata.json", "main.py"} <= uploaded


def test_ci_runs_make_test_from_a_git_less_export_with_the_commit_passed(tmp_path):
    """.ci/run in a repository of its own (so this runs from an export too), with a stand-in `make`
    that records where and how it was called."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, ".ci", "run"), repo / ".ci" / "run")
    for name in ("Makefile", "requirements.txt"):
        shutil.copy(os.path.join(ROOT, name), repo / name)
    identity = ["-c", "user.name=ci", "-c", "user.email=ci@localhost"]
    _git("init", "--quiet", cwd=str(repo))
    _git("add", "-A", cwd=str(repo))
    _git(*identity, "commit", "--quiet", "-m", "ci", cwd=str(repo))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "record"
    make = bin_dir / "make"
    make.write_text(f'#!/bin/sh\n{{ echo "args=$*"; echo "cwd=$(pwd)"; echo "commit=$PIPELINE_GIT_COMMIT";\n'
                    f'  test -e .git && echo git=yes || echo git=no; ls -A; }} > "{record}"\n')
    make.chmod(make.stat().st_mode | stat.S_IEXEC)
    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_GIT_COMMIT"}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", TMPDIR=str(tmp_path))
    ran = subprocess.run(["sh", str(repo / ".ci" / "run")], capture_output=True, text=True, timeout=120, env=env)
    assert ran.returncode == 0, ran.stderr
    lines = record.read_text().splitlines()
    assert lines[0] == "args=test"  # the README's test command
    assert lines[1].startswith(f"cwd={tmp_path}/ci-export.")
    assert lines[2] == "commit=" + _git("rev-parse", "HEAD", cwd=str(repo)).strip()
    assert lines[3] == "git=no"
    assert set(lines[4:]) == {".ci", "Makefile", "requirements.txt"}  # the committed tree, nothing else
    with open(os.path.join(ROOT, "README.md")) as handle:
        assert "make test" in handle.read()


def test_ci_tests_in_place_when_the_commit_is_given(tmp_path):
    """Cloud Build's tests step: no .git, PIPELINE_GIT_COMMIT set; .ci/run must not try git."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    make = bin_dir / "make"
    make.write_text(f'#!/bin/sh\npwd > "{tmp_path}/cwd"\n')
    make.chmod(make.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PIPELINE_GIT_COMMIT": "f" * 40}
    ran = subprocess.run(["sh", os.path.join(ROOT, ".ci", "run")], capture_output=True, text=True, timeout=60,
                         env=env)
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "cwd").read_text().strip() == os.path.realpath(ROOT)
