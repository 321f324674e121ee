"""What the local emulators (BigQuery, Cloud Storage) share: a subprocess with a log, stopped by its PID."""

from __future__ import annotations

import os
import signal
import subprocess


class EmulatorProcess:
    """Holds `process` (the emulator's Popen, once started) and `log_path` (its stdout and stderr)."""

    process: subprocess.Popen | None = None
    log_path: str

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def log_tail(self, size: int = 3000) -> str:
        with open(self.log_path, "rb") as handle:
            return handle.read()[-size:].decode(errors="replace")
