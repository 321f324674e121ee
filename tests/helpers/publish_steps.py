"""Publishing, one filesystem operation at a time: crash after any step (CrashAfter) or
interleave two jobs step by step (Interleaved); used by
tests/io/test_publish_retry.py and tests/io/test_two_jobs.py."""

from __future__ import annotations

import threading

from apache_beam.io.filesystems import FileSystems

from pipeline.io.publishing import commit_record


class Crash(Exception):
    """The injected crash."""


class PublishSteps:
    """Wraps the operations that change anything (FileSystems' copy, rename, delete and create, and
    commit_record.swap) so that each file's is one step: `before(label)` runs first, then the step.

    Batched calls run one file at a time, so a step can fall between two files of one batch, as
    on GCS, where a batch is not atomic. `steps` lists the steps done."""

    def __init__(self, monkeypatch, root: str):
        self.root, self.steps = root.rstrip("/") + "/", []
        self._copy, self._rename, self._delete, self._create, self._swap = (
            FileSystems.copy, FileSystems.rename, FileSystems.delete, FileSystems.create, commit_record.swap)
        monkeypatch.setattr(FileSystems, "copy", staticmethod(self.copy))
        monkeypatch.setattr(FileSystems, "rename", staticmethod(self.rename))
        monkeypatch.setattr(FileSystems, "delete", staticmethod(self.delete))
        monkeypatch.setattr(FileSystems, "create", staticmethod(self.create))
        monkeypatch.setattr(commit_record, "swap", self.swap)

    def before(self, label: str) -> None:
        """Runs before each step."""

    def _step(self, label: str, operation):
        self.before(label)
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

    def swap(self, path, source, expected):
        self._step(f"swap {self._short(source)} -> {self._short(path)}",
                   lambda: self._swap(path, source, expected))

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




class CrashAfter(PublishSteps):
    """Raises Crash before operation `limit` + 1; `limit=None` only records the steps."""

    def __init__(self, monkeypatch, root: str, limit: int | None):
        super().__init__(monkeypatch, root)
        self.limit = limit

    def before(self, label: str) -> None:
        if self.limit is not None and len(self.steps) >= self.limit:
            raise Crash(f"injected crash after step {len(self.steps)}")


class Interleaved(PublishSteps):
    """Two (or more) jobs' publish calls, each in its own thread, run step by step as the test says:
    `run(job, steps)` lets that job do `steps` more steps (None: to its end) and waits until it is
    held before the next one or has returned. Operations from any other thread pass straight through."""

    def __init__(self, monkeypatch, root: str):
        super().__init__(monkeypatch, root)
        self._lock = threading.Condition()
        self._jobs: dict[str, dict] = {}

    def start(self, job: str, call) -> None:
        state = self._jobs[job] = {"allowed": 0, "done": 0, "held": False, "finished": False,
                                   "result": None, "error": None, "labels": []}

        def body():
            try:
                state["result"] = call()
            except BaseException as exc:  # noqa: BLE001 (handed to the test)
                state["error"] = exc
            with self._lock:
                state["finished"] = True
                self._lock.notify_all()

        threading.Thread(target=body, name=f"publish-{job}", daemon=True).start()

    def run(self, job: str, steps: int | None, timeout: float = 120.0) -> dict:
        state = self._jobs[job]
        with self._lock:
            state["allowed"] = None if steps is None else state["done"] + steps
            self._lock.notify_all()
            if not self._lock.wait_for(lambda: state["finished"] or (state["held"] and state["allowed"] is not None
                                                                       and state["done"] >= state["allowed"]),
                                       timeout):
                raise TimeoutError(f"job {job} neither finished nor reached its next step")
        return state

    def before(self, label: str) -> None:
        job = threading.current_thread().name.removeprefix("publish-")
        state = self._jobs.get(job)
        if state is None:
            return
        with self._lock:
            state["held"] = True
            self._lock.notify_all()
            self._lock.wait_for(lambda: state["allowed"] is None or state["done"] < state["allowed"])
            state["held"] = False
            state["done"] += 1
            state["labels"].append(label)
