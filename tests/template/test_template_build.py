"""The template spec and the Cloud Build config, checked offline with the installed Google Cloud CLI.

`gcloud dataflow flex-template build --print-only` writes the spec it would upload to stdout;
the SDK's own Cloud Build config loader parses cloudbuild.yaml exactly as `gcloud builds submit`
does (unknown keys and bad substitution keys are errors). gcloud is a stated fact of these
machines and of CI, so its absence fails these tests; its version is read, not required (the
builds use the one cloudbuild.yaml's _GCLOUD_VERSION names).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess

import pytest
import yaml

from pipeline.params import metadata
from tests.helpers.google_schemas import validate
from tests.helpers import ROOT

CLOUDBUILD = os.path.join(ROOT, "cloudbuild.yaml")
TEMPLATE_PATH = "gs://my-bucket/templates/many-models.json"
COMMIT = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
IMAGE = "europe-west1-docker.pkg.dev/my-project/dataflow/many-models:0a1b2c3"

ALL_BUILDS = {"PROJECT_ID": "my-project", "BUILD_ID": "6f1c2d3e-0000-4000-8000-1234567890ab",
              "PROJECT_NUMBER": "123456789012", "LOCATION": "europe-west1"}
TRIGGER_ONLY = {"COMMIT_SHA", "SHORT_SHA", "REVISION_ID", "BRANCH_NAME", "TAG_NAME", "REPO_NAME",
                "REPO_FULL_NAME", "REF_NAME", "TRIGGER_NAME", "TRIGGER_BUILD_CONFIG_PATH"}
SUBSTITUTION = re.compile(r"\$\$|\$\{(\w+)\}|\$(\w+)")


@pytest.fixture(scope="module")
def sdk(gcloud, gcloud_env) -> dict:
    info = subprocess.run([gcloud, "info", "--format=json"], env=gcloud_env, capture_output=True, text=True,
                          check=True, timeout=120)
    details = json.loads(info.stdout)
    version = subprocess.run([gcloud, "version", "--format=json"], env=gcloud_env, capture_output=True, text=True,
                             check=True, timeout=120)
    return {"root": details["installation"]["sdk_root"], "python": details["basic"]["python_location"],
            "version": json.loads(version.stdout)["Google Cloud SDK"]}


@pytest.fixture(scope="module")
def cloudbuild() -> dict:
    with open(CLOUDBUILD) as handle:
        return yaml.safe_load(handle)


def substitute(value, values: dict):
    """Cloud Build's substitution (MUST_MATCH): every $NAME must be a declared or built-in key."""
    if isinstance(value, list):
        return [substitute(item, values) for item in value]
    if isinstance(value, dict):
        return {key: substitute(item, values) for key, item in value.items()}

    def replace(match):
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"${name} is neither a declared substitution nor a built-in of every build")
        return values[name]

    return SUBSTITUTION.sub(replace, value)


def used_substitutions(value) -> set[str]:
    text = json.dumps(value)
    return {m.group(1) or m.group(2) for m in SUBSTITUTION.finditer(text) if m.group(0) != "$$"}


def manual_build(cloudbuild: dict, **overrides) -> dict:
    """The config as Cloud Build resolves it for `gcloud builds submit --substitutions=...`."""
    values = {**ALL_BUILDS, **{k: str(v) for k, v in cloudbuild["substitutions"].items()}, "_GIT_COMMIT": COMMIT,
              **overrides}
    return substitute({k: v for k, v in cloudbuild.items() if k != "substitutions"}, values)


def step(build: dict, step_id: str) -> dict:
    (found,) = [s for s in build["steps"] if s["id"] == step_id]
    return found


def gcloud_print_only_shim(tmp_path, gcloud: str) -> str:
    """A PATH entry whose `gcloud` runs the real one with --print-only (nothing is uploaded)."""
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    shim = shim_dir / "gcloud"
    shim.write_text(f'#!/bin/sh\nexec "{gcloud}" "$@" --print-only --format=json\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    return str(shim_dir)


def check_spec(spec: dict, image: str) -> None:
    assert validate(spec, "ContainerSpec") == []
    assert spec["image"] == image
    assert spec["sdkInfo"] == {"language": "PYTHON"}
    generated = metadata.template_metadata()
    assert spec["metadata"] == {key: generated[key] for key in ("name", "description", "parameters")}


def test_gcloud_builds_the_template_spec_from_our_files(gcloud, gcloud_env, sdk):
    assert re.fullmatch(r"\d+\.\d+\.\d+", sdk["version"]), sdk["version"]  # whichever the machine has
    built = subprocess.run(
        [gcloud, "dataflow", "flex-template", "build", TEMPLATE_PATH, f"--image={IMAGE}",
         "--sdk-language=PYTHON", "--metadata-file=metadata.json", "--print-only", "--format=json"],
        cwd=ROOT, env=gcloud_env, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    check_spec(json.loads(json.loads(built.stdout)), IMAGE)


def test_cloudbuild_template_step_builds_the_spec_for_the_pushed_image(cloudbuild, gcloud, gcloud_env, tmp_path):
    build = manual_build(cloudbuild, _TAG="0a1b2c3", _TEMPLATE_PATH=TEMPLATE_PATH)
    template = step(build, "template")
    env = dict(item.split("=", 1) for item in template["env"])
    assert env["IMAGE_URI"] == IMAGE
    assert template["entrypoint"] == "bash" and template["args"][0] == "-c"
    ran = subprocess.run(["bash", "-c", template["args"][1]], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**gcloud_env, **env,
                              "PATH": gcloud_print_only_shim(tmp_path, gcloud) + os.pathsep + os.environ["PATH"]})
    assert ran.returncode == 0, ran.stderr
    spec = json.loads(json.loads(ran.stdout))
    check_spec(spec, IMAGE)
    assert spec["defaultEnvironment"]["additionalUserLabels"] == {"template": "many-models", "image-tag": "0a1b2c3"}
    # The image that is built, pushed and named in the spec is the one baked in as the workers' image.
    for step_id in ("image", "push"):
        assert step(build, step_id)["env"] == template["env"]
    assert '--build-arg PIPELINE_IMAGE="$IMAGE_URI"' in step(build, "image")["args"][1]
    assert '--tag "$IMAGE_URI"' in step(build, "image")["args"][1]


def test_cloudbuild_loads_in_the_sdk_config_loader(sdk, cloudbuild, tmp_path):
    loader = (
        "import json, sys\n"
        "sys.path[:0] = [sys.argv[1] + '/lib', sys.argv[1] + '/lib/third_party']\n"
        "from googlecloudsdk.api_lib.cloudbuild import config\n"
        "from googlecloudsdk.api_lib.util import apis\n"
        "from apitools.base.py import encoding\n"
        "build = config.LoadCloudbuildConfigFromPath(sys.argv[2], apis.GetMessagesModule('cloudbuild', 'v1'))\n"
        "print(json.dumps(encoding.MessageToDict(build)))\n")

    def load(path):
        return subprocess.run([sdk["python"], "-c", loader, sdk["root"], path], capture_output=True, text=True,
                              timeout=120)

    loaded = load(CLOUDBUILD)
    assert loaded.returncode == 0, loaded.stderr
    build = json.loads(loaded.stdout)
    assert [s["id"] for s in build["steps"]] == ["check-substitutions", "tests", "image", "push", "template",
                                                 "smoke-launch"]
    assert validate(build, "Build", api="cloudbuild") == []
    # Negative controls: the same loader rejects an unknown key and a malformed substitution key.
    with open(CLOUDBUILD) as handle:
        text = handle.read()
    for broken, message in ((text.replace("entrypoint: sh", "entrypont: sh", 1), "entrypont: unused"),
                            (text.replace("_SMOKE_OUTPUT:", "_smoke_output:", 1), "does not respect format")):
        path = tmp_path / "broken.yaml"
        path.write_text(broken)
        failed = load(str(path))
        assert failed.returncode != 0 and message in failed.stderr


def test_cloudbuild_matches_the_build_schema(cloudbuild):
    assert validate(cloudbuild, "Build", api="cloudbuild") == []
    assert validate({**cloudbuild, "option": {}}, "Build", api="cloudbuild") == ["Build.option: unknown field of Build"]


def test_cloudbuild_substitutions_are_declared_used_and_manual_friendly(cloudbuild):
    declared = set(cloudbuild["substitutions"])
    assert all(re.fullmatch(r"_[A-Z0-9_]+", key) for key in declared)
    assert {"_REGION", "_REPOSITORY", "_IMAGE", "_TEMPLATE_PATH", "_TAG"} <= declared
    used = used_substitutions({k: v for k, v in cloudbuild.items() if k != "substitutions"})
    assert used & TRIGGER_ONLY == set(), "manual builds have no trigger substitutions"
    assert used - set(ALL_BUILDS) == declared, "MUST_MATCH: every declared substitution used, and only those"
    with pytest.raises(KeyError, match="SHORT_SHA"):
        substitute("image:$SHORT_SHA", {**ALL_BUILDS, "_TAG": "x"})


def run_step(build_step: dict) -> subprocess.CompletedProcess:
    """A bash step's script, run here with the step's env."""
    env = {**os.environ, **dict(item.split("=", 1) for item in build_step.get("env", []))}
    return subprocess.run(["bash", *build_step["args"]], capture_output=True, text=True, timeout=30, env=env)


@pytest.mark.parametrize("overrides,status,message", [
    ({"_TAG": "0a1b2c3", "_TEMPLATE_PATH": TEMPLATE_PATH}, 0, ""),
    ({"_TAG": "v1_2-rc", "_TEMPLATE_PATH": TEMPLATE_PATH}, 0, ""),
    ({"_TAG": "a" * 63, "_TEMPLATE_PATH": TEMPLATE_PATH}, 0, ""),
    ({"_TEMPLATE_PATH": TEMPLATE_PATH}, 2, "set _TAG"),
    ({"_TAG": "0a1b2c3", "_TEMPLATE_PATH": "my-bucket/template"}, 2, "_TEMPLATE_PATH"),
    ({"_TAG": "V1", "_TEMPLATE_PATH": TEMPLATE_PATH}, 2, "not a valid label value"),
    ({"_TAG": "1.2.0", "_TEMPLATE_PATH": TEMPLATE_PATH}, 2, "not a valid label value"),
    ({"_TAG": "a" * 64, "_TEMPLATE_PATH": TEMPLATE_PATH}, 2, "at most 63 characters"),
    ({"_TAG": "-x", "_TEMPLATE_PATH": TEMPLATE_PATH}, 2, "not a valid label value"),
    ({"_TAG": "a b", "_TEMPLATE_PATH": TEMPLATE_PATH}, 2, "not a valid label value"),
    ({"_TAG": "x\ny", "_TEMPLATE_PATH": TEMPLATE_PATH}, 2, "not a valid label value"),
    ({"_TAG": "0a1b2c3", "_TEMPLATE_PATH": TEMPLATE_PATH, "_GIT_COMMIT": ""}, 2, "_GIT_COMMIT"),
    ({"_TAG": "0a1b2c3", "_TEMPLATE_PATH": TEMPLATE_PATH, "_GIT_COMMIT": "unknown"}, 2, "_GIT_COMMIT"),
])
def test_cloudbuild_check_substitutions_refuses_a_bad_manual_build(cloudbuild, overrides, status, message):
    ran = run_step(step(manual_build(cloudbuild, **overrides), "check-substitutions"))
    assert ran.returncode == status, ran.stdout + ran.stderr
    assert message in ran.stdout + ran.stderr


def test_cloudbuild_passes_the_commit_and_one_gcloud_version_to_every_step(cloudbuild):
    version = cloudbuild["substitutions"]["_GCLOUD_VERSION"]
    assert re.fullmatch(r"\d+\.0\.\d+", version)
    assert cloudbuild["substitutions"]["_GIT_COMMIT"] == "", "a manual build must name its commit"
    build = manual_build(cloudbuild, _TAG="0a1b2c3", _TEMPLATE_PATH=TEMPLATE_PATH)
    env = dict(item.split("=", 1) for item in step(build, "tests")["env"])
    assert env == {"PIPELINE_GIT_COMMIT": COMMIT, "GCLOUD_VERSION": f"{version}-0"}
    gcloud_steps = [s for s in build["steps"] if "cloudsdktool" in s["name"]]
    assert {s["id"] for s in gcloud_steps} == {"template", "smoke-launch"}
    assert {s["name"] for s in gcloud_steps} == {f"gcr.io/google.com/cloudsdktool/google-cloud-cli:{version}-stable"}
    with open(os.path.join(ROOT, ".ci", "cloudbuild-tests")) as handle:
        script = handle.read()
    assert '"google-cloud-cli=${GCLOUD_VERSION}"' in script and "528.0.0" not in script
    # Without the commit the tests step stops at once, saying why.
    refused = subprocess.run(["sh", os.path.join(ROOT, ".ci", "cloudbuild-tests")], capture_output=True, text=True,
                             timeout=30, env={k: v for k, v in os.environ.items() if k != "PIPELINE_GIT_COMMIT"})
    assert refused.returncode != 0 and "_GIT_COMMIT" in refused.stderr


def test_cloudbuild_runs_the_tests_before_building_and_smoke_launch_is_opt_in(cloudbuild):
    build = manual_build(cloudbuild, _TAG="0a1b2c3", _TEMPLATE_PATH=TEMPLATE_PATH)
    ids = [s["id"] for s in build["steps"]]
    assert ids.index("tests") < ids.index("image") < ids.index("push") < ids.index("template")
    assert step(build, "tests")["args"] == [".ci/cloudbuild-tests"]
    assert os.access(os.path.join(ROOT, ".ci", "cloudbuild-tests"), os.X_OK)
    smoke = step(build, "smoke-launch")
    assert smoke["args"][:2] == [".ci/smoke-launch", "false"]
    skipped = subprocess.run(["sh", *smoke["args"]], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert skipped.returncode == 0 and "smoke launch skipped" in skipped.stdout


def test_ci_scripts_parse_and_smoke_launch_refuses_to_run_without_an_output():
    for script in ("cloudbuild-tests", "smoke-launch", "run"):
        assert subprocess.run(["sh", "-n", os.path.join(ROOT, ".ci", script)], timeout=30).returncode == 0
    refused = subprocess.run(["sh", ".ci/smoke-launch", "true", TEMPLATE_PATH, "europe-west1", "", "many-models-smoke"],
                             cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2 and "_SMOKE_OUTPUT" in refused.stderr
