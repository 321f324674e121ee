"""Every command in the README's (and docs/'s) fenced sh blocks is checked, so none rots.

- `make TARGET ...`: the target exists (`make -n`, nothing runs); `ARGS="..."` goes through the pipeline's parser.
- `python -m pipeline ...` (any python): the pipeline's own parser and every module's checks (`parse_args`);
  the "Use your own data" commands run end to end on small files made here at the paths they name.
- `python -m pipeline.record.<tool> ...`: that tool's own argparse parser (stopped right after parsing).
- `python -c ...`: run, in a folder holding the files it reads.
- `gcloud ...`: gcloud's own argument parsing, offline (no account, every connection to a dead local proxy).
- ```sql blocks: each is one of sql/*.sql, which tests/io/test_bigquery_graph.py runs on the BigQuery emulator.
A command none of these recognise fails the test, unless it is in ALLOWED below with its reason.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pipeline import run as pipeline_run
from tests.helpers import ROOT

DOCUMENTS = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
SHELL_VALUES = {"$(date +%Y%m%d-%H%M%S)": "20260101-000000", "$(git rev-parse --short HEAD)": "0a1b2c3",
                "$(git rev-parse HEAD)": "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"}
# Commands that cannot run here, each with why.
ALLOWED = {
    "docker": "Docker is not run on these machines (tests/template/test_image.py checks the Dockerfile instead)",
}


def blocks(language: str) -> list[tuple[str, str]]:
    found = []
    for path in DOCUMENTS:
        with open(path) as handle:
            for match in FENCE.finditer(handle.read()):
                if match.group(1) == language:
                    found.append((os.path.relpath(path, ROOT), match.group(2)))
    return found


def commands(block: str) -> list[list[str]]:
    """A block's commands as argv lists: continuations joined, comments dropped, `&&` split, variables set."""
    variables: dict[str, str] = {}
    result = []
    for line in block.replace("\\\n", " ").splitlines():
        for before, value in SHELL_VALUES.items():
            line = line.replace(before, value)
        for name, value in variables.items():
            line = line.replace(f"${name}", value)
        words = shlex.split(line, comments=True)
        while words:
            command = words[:words.index("&&")] if "&&" in words else words
            words = words[len(command) + 1:]
            if len(command) == 1 and re.fullmatch(r"[A-Z_]+=\S+", command[0]):
                name, value = command[0].split("=", 1)
                variables[name] = value
            elif command:
                result.append(command)
    return result


def sh_commands() -> list[tuple[str, list[str]]]:
    return [(where, argv) for where, block in blocks("sh") for argv in commands(block)]


def own_data_commands() -> list[list[str]]:
    with open(os.path.join(ROOT, "README.md")) as handle:
        text = handle.read()
    section = text[text.index("## Use your own data"):]
    section = section[:section.index("\n## ", 1)]
    return [argv for _, block in FENCE.findall(section) for argv in commands(block)]


def pipeline_argv(argv: list[str]) -> list[str] | None:
    if len(argv) >= 3 and argv[0].endswith("python") and argv[1:3] == ["-m", "pipeline"]:
        return argv[3:]
    if len(argv) >= 2 and argv[0].endswith("python") and argv[1] == "main.py":
        return argv[2:]
    return None


class Parsed(Exception):
    pass


def check_make(argv: list[str]) -> None:
    target, assignments = argv[1], argv[2:]
    done = subprocess.run(["make", "-n", target, *assignments], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"make -n {target}: {done.stderr}"
    for assignment in assignments:
        if assignment.startswith("ARGS="):
            pipeline_run.parse_args(shlex.split(assignment[len("ARGS="):]))


def check_tool(module: str, arguments: list[str], monkeypatch) -> None:
    original = argparse.ArgumentParser.parse_args

    def stop_after_parsing(self, args=None, namespace=None):
        raise Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop_after_parsing)
    with pytest.raises(Parsed):
        importlib.import_module(module).main(arguments)
    monkeypatch.undo()


def check_python_c(code: str, tmp_path) -> None:
    folder = tmp_path / "output" / "sample" / "predictions"
    folder.mkdir(parents=True)
    pd.DataFrame({"shop_id": ["S1", "S1"], "year": [2015, 2016], "predicted": [1.0, 2.0],
                  "actual": [1.5, 2.0]}).to_parquet(folder / "part-0.parquet")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "rmse" in done.stdout, done.stderr


def check_gcloud(argv: list[str], tmp_path) -> None:
    gcloud = shutil.which("gcloud")
    assert gcloud, "gcloud (Google Cloud CLI) is not on PATH; these machines and CI have it installed"
    dead = "http://127.0.0.1:9"  # nothing listens: any request fails here, nothing leaves the machine
    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud-config"), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1", "CLOUDSDK_CORE_PROJECT": "my-project",
           "HTTPS_PROXY": dead, "HTTP_PROXY": dead, "https_proxy": dead, "http_proxy": dead,
           "CLOUDSDK_PROXY_TYPE": "http", "CLOUDSDK_PROXY_ADDRESS": "127.0.0.1", "CLOUDSDK_PROXY_PORT": "9"}
    done = subprocess.run([gcloud, *argv[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    parse_errors = ("unrecognized arguments", "argument --", "Invalid choice", "expected one argument")
    assert done.returncode != 2 and not any(e in done.stderr for e in parse_errors), done.stderr


def test_every_sh_command_is_checked(monkeypatch, tmp_path):
    found = sh_commands()
    assert len(found) > 20
    unchecked = []
    for index, (where, argv) in enumerate(found):
        scratch = tmp_path / str(index)
        scratch.mkdir()
        if argv[0] == "make":
            check_make(argv)
        elif (arguments := pipeline_argv(argv)) is not None:
            pipeline_run.parse_args(arguments)
        elif argv[0].endswith("python") and argv[1] == "-m" and argv[2].startswith("pipeline.record."):
            check_tool(argv[2], argv[3:], monkeypatch)
        elif argv[0].endswith("python") and argv[1] == "-c":
            check_python_c(argv[2], scratch)
        elif argv[0] == "gcloud":
            check_gcloud(argv, scratch)
        elif argv[0] not in ALLOWED:
            unchecked.append(f"{where}: {shlex.join(argv)}")
    assert not unchecked, "commands no test checks (add a check, or an ALLOWED entry saying why):\n" + "\n".join(unchecked)


def test_a_bad_command_would_be_caught(tmp_path):
    with pytest.raises(Exception):
        pipeline_run.parse_args(["--window_size=1"])
    with pytest.raises(AssertionError):
        check_gcloud(["gcloud", "dataflow", "flex-template", "run", "job", "--no-such-flag=1"], tmp_path)
    assert commands("make run ARGS=\"--model=ridge\"  # note\nIMAGE=x\nmake image IMAGE=$IMAGE && docker push $IMAGE\n") \
        == [["make", "run", "ARGS=--model=ridge"], ["make", "image", "IMAGE=x"], ["docker", "push", "x"]]


def test_sql_blocks_are_the_tested_queries():
    tested = {open(path).read().strip() for path in glob.glob(os.path.join(ROOT, "sql", "*.sql"))}
    shown = blocks("sql")
    assert shown
    for where, block in shown:
        assert block.strip() in tested, f"{where}: a SQL block that is not one of sql/*.sql"


def own_files(folder) -> None:
    """Small files of the shapes the "Use your own data" commands name (3 keys each)."""
    rng = np.random.default_rng(0)
    days = pd.date_range("2020-01-01", "2023-12-31", freq="D")
    pd.concat([pd.DataFrame({"store": key, "day": days.date, "units": 10 + rng.normal(size=len(days)),
                             "price": rng.normal(size=len(days)), "promo": rng.integers(0, 2, len(days))})
               for key in "ABC"]).to_csv(folder / "sales.csv", index=False)
    months = pd.date_range("2019-01-01", periods=48, freq="MS")
    pd.concat([pd.DataFrame({"product": key, "month_start": months.date,
                             "revenue": 100 + 10 * np.sin(months.month) + rng.normal(size=48)})
               for key in "ABC"]).to_csv(folder / "monthly.csv", index=False)
    (folder / "weekly").mkdir()
    weeks = pd.date_range("2021-01-04", periods=130, freq="W-MON")
    pd.concat([pd.DataFrame({"sku": key, "week_start": weeks.date, "qty": 50 + rng.normal(size=130)})
               for key in "ABC"]).to_parquet(folder / "weekly" / "part-0.parquet")


def test_use_your_own_data_commands_run_end_to_end(tmp_path):
    found = own_data_commands()
    assert len(found) == 3
    own_files(tmp_path)
    for argv in found:
        arguments = pipeline_argv(argv)
        assert arguments is not None, argv
        done = subprocess.run([sys.executable, "-m", "pipeline", *arguments, "--quiet",
                               "--direct_num_workers=1", "--direct_running_mode=in_memory"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        params, _ = pipeline_run.parse_args(arguments)
        output = tmp_path / params.output
        assert glob.glob(str(output / "predictions" / "part-*")), shlex.join(argv)
        assert "trained" in done.stdout
