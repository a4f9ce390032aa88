"""``make screenshots``: every screen of the tablet app, in French and English, on both 10"
tablets (1280x800 and 1920x1200), into ``docs/screens/{screen}-{lang}-{w}x{h}.png``.

Runs ``tests/ui/a11y_driver.py`` (fake cores, the real app) under its own Xvfb, with the
simulated screen's dpi and density, two runs at a time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.ui.conftest import REPO, scenario_env
from tests.ui.test_accessibility import SIZES, tablet_env

LANGUAGES = ("fr", "en")
OUT = REPO / "docs" / "screens"


def start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        raise SystemExit("Xvfb did not start")
    return proc, f":{number}"


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    xvfb, display = start_xvfb()
    failed = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            jobs = [(lang, w, h) for lang in LANGUAGES for w, h in SIZES]
            for i in range(0, len(jobs), 2):
                procs = []
                for lang, w, h in jobs[i : i + 2]:
                    env = tablet_env(scenario_env(display, Path(tmp) / f"kivy-{lang}-{w}"), w, h)
                    cmd = [sys.executable, "-m", "tests.ui.a11y_driver"]
                    cmd += [str(Path(tmp) / f"{lang}-{w}"), str(w), str(h), lang, str(OUT)]
                    procs.append(
                        (
                            (lang, w, h),
                            subprocess.Popen(
                                cmd,
                                cwd=REPO,
                                env=env,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE,
                            ),
                        )
                    )
                for job, proc in procs:
                    _, err = proc.communicate(timeout=300)
                    status = "ok" if proc.returncode == 0 else f"failed ({proc.returncode})"
                    print(f"{job[0]} {job[1]}x{job[2]}: {status}")
                    if proc.returncode != 0:
                        failed += 1
                        sys.stderr.write(err.decode(errors="replace")[-2000:])
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=5)
    print(f"screens in {OUT}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
