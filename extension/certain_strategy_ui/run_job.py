"""`python run_job.py FOLDER COMMAND...`: runs a job's command and writes its exit code to FOLDER/exit_code, so a page
that finds the job again after a WebUI restart still knows how it ended. Stop signals reach the whole process group:
this process outlives them (SIGINT and SIGTERM do nothing here) and waits for the command to answer them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    folder, command = Path(argv[0]), argv[1:]
    child = subprocess.Popen(command)
    for name in ("SIGINT", "SIGTERM"):  # handlers, not SIG_IGN, which the command would have inherited
        signal.signal(getattr(signal, name), lambda signum, frame: None)
    code = child.wait()
    temporary = folder / "exit_code.tmp"
    temporary.write_text(f"{code}\n", encoding="utf-8")
    os.replace(temporary, folder / "exit_code")
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
