"""The home's tiles on both 10" tablets: all on screen, none overlapping, bigger when fewer.

``tests/ui/home_layout_driver.py`` runs the real app at 1280x800 and 1920x1200 (with the real
screens' dpi and density, as ``test_accessibility.py``) and shows 1 to 6 contacts, senior and
youth, by day and at night (the night line takes height). Regressions named here: at 1920x1200
the second row of tiles was clipped by the activities row, and two or three contacts were small
tiles under the header with an empty middle.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.ui.conftest import REPO, own_xvfb, scenario_env
from tests.ui.test_accessibility import SIZES, tablet_env

pytestmark = [pytest.mark.ui, pytest.mark.timeout(360)]
TIMEOUT = 300
SLACK = 1.0  # pixels: rounding of window coordinates


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("home-layout")
    with own_xvfb() as display:
        procs = {}
        for width, height in SIZES:
            env = tablet_env(scenario_env(display, base / f"kivy-{width}"), width, height)
            out = base / f"{width}x{height}"
            procs[f"{width}x{height}"] = subprocess.Popen(
                [sys.executable, "-m", "tests.ui.home_layout_driver", str(out)]
                + [str(width), str(height)],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        runs: dict[str, Any] = {}
        for size, proc in procs.items():
            try:
                out_text, err = proc.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                out_text, err = proc.communicate()
            lines = [line for line in out_text.splitlines() if line.startswith("RESULT:")]
            run = json.loads(lines[-1][len("RESULT:") :]) if lines else {}
            run["stderr_tail"] = err[-3000:]
            runs[size] = run
    (base / "layouts.json").write_text(json.dumps(runs, indent=1))
    yield runs


def cases_for(layouts: dict[str, Any], size: str) -> list[dict[str, Any]]:
    run = layouts[size]
    if not run.get("ok"):
        pytest.fail(f"{size}: {run.get('error')}\n{run.get('stderr_tail')}")
    return list(run["cases"])


def inside(inner: list[float], outer: list[float]) -> bool:
    return (
        inner[0] >= outer[0] - SLACK
        and inner[1] >= outer[1] - SLACK
        and inner[2] <= outer[2] + SLACK
        and inner[3] <= outer[3] + SLACK
    )


def overlap(a: list[float], b: list[float]) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > SLACK and min(a[3], b[3]) - max(a[1], b[1]) > SLACK


def area(r: list[float]) -> float:
    return (r[2] - r[0]) * (r[3] - r[1])


SIZE_IDS = [f"{w}x{h}" for w, h in SIZES]


@pytest.mark.parametrize("size", SIZE_IDS)
def test_every_case_was_shown(layouts, size):
    cases = cases_for(layouts, size)
    assert [(c["look"], c["night"], c["count"]) for c in cases] == [
        (look, night, count)
        for look in ("senior", "youth")
        for count in range(1, 7)
        for night in (False, True)
    ]
    for case in cases:
        assert case["screen"] == "home", case["name"]
        assert len(case["tiles"]) == case["count"], case["name"]
        assert case["activity_children"] > 0, "the activities row is part of the layout"
        # At night every tile is greyed (quiet hours); by day they can all be called.
        assert case["availability"] == (["later"] if case["night"] else ["available"])
        assert len(case["requests"]) == (1 if case["look"] == "youth" else 0)


@pytest.mark.parametrize("size", SIZE_IDS)
def test_every_tile_is_whole_on_screen_and_none_overlaps(layouts, size):
    width, height = (int(v) for v in size.split("x"))
    window = [0.0, 0.0, float(width), float(height)]
    for case in cases_for(layouts, size):
        where = f"{size} {case['name']}"
        scroll = case["scroll"]
        others = [case["header"], case["activities"], *case["requests"]]
        for button in case["requests"]:
            assert inside(button, scroll), f"{where}: 'Ask for a contact' clipped"
        for i, tile in enumerate(case["tiles"]):
            # Inside the scroll area means not clipped by it (the regression at 1920x1200).
            assert inside(tile, window), f"{where}: tile {i} off screen {tile}"
            assert inside(tile, scroll), f"{where}: tile {i} clipped {tile} by {scroll}"
            assert inside(case["names"][i], tile), f"{where}: tile {i}'s name outside it"
            assert inside(case["pictures"][i], tile), f"{where}: tile {i}'s photo outside it"
            for j, other in enumerate(case["tiles"][i + 1 :], start=i + 1):
                assert not overlap(tile, other), f"{where}: tiles {i} and {j} overlap"
            for other in others:
                assert not overlap(tile, other), f"{where}: tile {i} overlaps {other}"


@pytest.mark.parametrize("size", SIZE_IDS)
def test_fewer_contacts_get_bigger_tiles_and_photos(layouts, size):
    cases = cases_for(layouts, size)
    for look in ("senior", "youth"):
        for night in (False, True):
            series = [c for c in cases if c["look"] == look and c["night"] == night]
            tile_areas = [area(c["tiles"][0]) for c in series]
            photos = [min(p[2] - p[0], p[3] - p[1]) for p in (c["pictures"][0] for c in series)]
            where = f"{size} {look} {'night' if night else 'day'}"
            for n in range(1, 6):
                # One contact fewer never makes a tile or its photo smaller.
                assert tile_areas[n - 1] >= tile_areas[n] - 1, (where, n, tile_areas)
                assert photos[n - 1] >= photos[n] - 1, (where, n, photos)
            assert tile_areas[0] > 2.5 * tile_areas[5], (where, tile_areas)
            assert photos[1] > 1.5 * photos[5], (where, photos)


@pytest.mark.parametrize("size", SIZE_IDS)
def test_two_or_three_contacts_fill_the_middle_of_the_screen(layouts, size):
    for case in cases_for(layouts, size):
        if case["count"] not in (2, 3):
            continue
        scroll, cells = case["scroll"], case["tiles"] + case["requests"]
        top = max(t[3] for t in cells)
        bottom = min(t[1] for t in cells)
        free = scroll[3] - scroll[1]
        # The tiles take most of the height left under the header, not a strip under it (a
        # row of four square photos, a youth's three and "Ask for a contact", leaves a little).
        assert (top - bottom) >= 0.7 * free, (size, case["name"], top - bottom, free)
