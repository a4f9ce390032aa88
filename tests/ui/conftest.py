"""Fixtures for the UI tests: an Xvfb display with Mesa GL and the scenario runner.

Why subprocesses: Kivy keeps one Window (and one GL context, one EventLoop, one Builder) per
process, and an App cannot be run twice cleanly in the same process. Each scenario therefore
runs the real app in a fresh ``python -m tests.ui.driver SCENARIO OUT_DIR`` process, which
reports what it saw as JSON; the scenarios run in parallel (about 3 s each), so the whole UI
suite stays around 5-10 s and a crash in one cannot poison the others or the pytest process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.ui.limits import SCENARIOS_TIMEOUT

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = ("home", "update", "enrolment", "tile_copies")
SCENARIO_TIMEOUT = SCENARIOS_TIMEOUT  # see tests/ui/limits.py


@contextmanager
def own_xvfb(screen: str = "1920x1200x24") -> Iterator[str]:
    """An Xvfb of our own on a free display number; yields its ``DISPLAY``."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()
        if not number:
            pytest.fail("Xvfb did not start")
        yield f":{number}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def xvfb_display() -> Iterator[str]:
    """A running X display: our own Xvfb on a free display number, 1280x800x24."""
    if shutil.which("Xvfb") is None:
        if os.environ.get("DISPLAY"):
            yield os.environ["DISPLAY"]
            return
        pytest.skip("Xvfb is not installed and there is no DISPLAY")
    read_fd, write_fd = os.pipe()
    # -displayfd: Xvfb picks a free display number itself and writes it when it is ready.
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()
        if not number:
            pytest.fail("Xvfb did not start")
        yield f":{number}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def scenario_env(display: str, kivy_home: Path) -> dict[str, str]:
    # Scenarios sharing a KIVY_HOME start in parallel: Kivy's own "exists? mkdir" of the home
    # and of its "mods" folder raced (FileExistsError in one of them), and so could the first
    # writing of its config.ini. KIVY_NO_CONFIG: Kivy neither creates nor reads nor writes
    # anything there (its defaults in memory, which a fresh config.ini holds anyway).
    kivy_home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        DISPLAY=display,
        KIVY_NO_ARGS="1",
        KIVY_HOME=str(kivy_home),
        KIVY_NO_CONFIG="1",
        KIVY_NO_FILELOG="1",
        KIVY_LOG_MODE="PYTHON",
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env


@pytest.fixture(scope="session")
def scenario_results(
    xvfb_display: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """Runs every scenario of ``tests/ui/driver.py`` once, in parallel, and parses its result."""
    base = tmp_path_factory.mktemp("ui")
    env = scenario_env(xvfb_display, base / "kivy-home")
    procs: dict[str, tuple[subprocess.Popen[str], float]] = {}
    for name in SCENARIOS:
        out_dir = base / name
        out_dir.mkdir()
        procs[name] = (
            subprocess.Popen(
                [sys.executable, "-m", "tests.ui.driver", name, str(out_dir)],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
            time.monotonic(),
        )
    results: dict[str, dict[str, Any]] = {}
    for name, (proc, started) in procs.items():
        try:
            out, err = proc.communicate(timeout=SCENARIO_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        lines = [line for line in out.splitlines() if line.startswith("RESULT:")]
        result: dict[str, Any] = json.loads(lines[-1][len("RESULT:") :]) if lines else {}
        result["returncode"] = proc.returncode
        result["seconds"] = round(time.monotonic() - started, 2)
        result["stderr_tail"] = err[-4000:]
        results[name] = result
    return results


@pytest.fixture
def scenario(scenario_results: dict[str, dict[str, Any]], request: pytest.FixtureRequest):
    """The result of the scenario named by the test's ``scenario_name`` parameter."""

    def get(name: str) -> dict[str, Any]:
        result = scenario_results[name]
        if not result.get("ok"):
            pytest.fail(
                f"scenario {name} failed: {result.get('error')}\n--- stderr ---\n"
                f"{result['stderr_tail']}"
            )
        return result

    return get


def run_scenarios(
    driver: str,
    names: Iterable[str],
    base: Path,
    env: dict[str, str],
    timeout: float = SCENARIO_TIMEOUT,
) -> dict[str, dict[str, Any]]:
    """Run ``python -m {driver} NAME OUT_DIR`` for each scenario at once; parse their RESULT lines.

    One app per process (Kivy keeps one Window per process); all in parallel, so the suite's
    time is the slowest scenario's, not their sum.
    """
    procs = {
        name: (
            subprocess.Popen(
                [sys.executable, "-m", driver, name, str(base / name)],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
            time.monotonic(),
        )
        for name in names
    }
    results: dict[str, dict[str, Any]] = {}
    for name, (proc, started) in procs.items():
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        lines = [line for line in out.splitlines() if line.startswith("RESULT:")]
        result: dict[str, Any] = json.loads(lines[-1][len("RESULT:") :]) if lines else {}
        result["seconds"] = round(time.monotonic() - started, 2)
        result["stderr_tail"] = err[-4000:]
        results[name] = result
    return results


def scenario_result(results: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """The result of scenario ``name``, or a failure that shows its error and stderr."""
    result = results[name]
    if not result.get("ok"):
        pytest.fail(
            f"scenario {name} failed: {result.get('error')}\n--- stderr ---\n"
            f"{result['stderr_tail']}"
        )
    return result


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The test that first asks for ``scenario`` waits for every scenario app: a longer limit."""
    for item in items:
        if "scenario" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(SCENARIO_TIMEOUT + 120))
