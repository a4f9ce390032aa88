"""Spoken announcements, heard: what the ringing tablet sends to its speaker.

The app runs in ``tests/ui/announce_driver.py``.
The speaker is SDL's "disk" audio driver: the app's sounds, mixed by SDL_mixer as on a tablet,
written to a file. The test finds the sentence espeak-ng made ("Julie vous appelle") and the
chime in that file by normalised cross-correlation, so it checks what a resident would hear and
in which order: the name first, then the chime, never both at once.
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kiosk.speech import Announcer
from screens.call.incoming import ANNOUNCE_GAP_S, RINGTONE_SECONDS
from tests.ui.conftest import run_scenarios, scenario_env

SCENARIOS = ("on", "off", "outgoing")
SPEAKER_RATE = 44100  # SDL_mixer's output as Kivy opens it: 44.1 kHz, 16-bit, stereo
FOUND = 0.6  # a normalised correlation this high is the same sound (noise stays under 0.2)
LOOP_SLACK_S = 0.3  # Kivy loops a sound by playing it again from its clock
TIMEOUT = 200
pytestmark = [pytest.mark.ui, pytest.mark.timeout(260)]


def speaker(path: Path) -> np.ndarray:
    """The speaker's signal, mono, as floats."""
    raw = np.frombuffer(path.read_bytes(), dtype="<i2")
    raw = raw[: raw.size // 2 * 2].reshape(-1, 2)
    return raw.astype(np.float64).mean(axis=1) / 32768.0


def wav(path: Path, seconds: float | None = None) -> np.ndarray:
    """A mono 16-bit WAV file at the speaker's rate (``seconds``: only its beginning)."""
    with wave.open(str(path), "rb") as f:
        rate = f.getframerate()
        data = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(np.float64)
    data = data / 32768.0
    if seconds is not None:
        data = data[: int(seconds * rate)]
    times = np.arange(int(data.size * SPEAKER_RATE / rate)) / SPEAKER_RATE
    return np.interp(times, np.arange(data.size) / rate, data)


def correlation(signal: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of ``ref`` at each offset of ``signal`` (-1..1)."""
    n = ref.size
    size = 1 << int(np.ceil(np.log2(signal.size + n)))
    dots = np.fft.irfft(np.fft.rfft(signal, size) * np.conj(np.fft.rfft(ref, size)), size)
    dots = dots[: signal.size - n + 1]
    energy = np.concatenate(([0.0], np.cumsum(signal**2)))
    window = np.sqrt(np.maximum(energy[n:] - energy[:-n], 1e-12))
    return dots / (window * np.linalg.norm(ref))


def peaks(corr: np.ndarray, threshold: float, spacing_s: float) -> list[float]:
    """Times (s) where ``corr`` is above ``threshold``, one per ``spacing_s``."""
    found: list[float] = []
    for index in np.flatnonzero(corr >= threshold):
        at = index / SPEAKER_RATE
        if not found or at - found[-1] >= spacing_s:
            found.append(at)
    return found


@pytest.fixture(scope="module")
def results(xvfb_display: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("announce")
    env = scenario_env(xvfb_display, base / "kivy-home")
    return run_scenarios("tests.ui.announce_driver", SCENARIOS, base, env, timeout=TIMEOUT)


def result_of(results: dict[str, Any], name: str) -> dict[str, Any]:
    result = results[name]
    if not result.get("ok"):
        pytest.fail(f"{name}: {result.get('error')}\n--- stderr ---\n{result.get('stderr_tail')}")
    return result


def test_the_tablet_says_who_calls_then_chimes(results: dict[str, Any]) -> None:
    result = result_of(results, "on")
    assert result["title"] == "Julie vous appelle"
    # The sentence on the screen, in French, from espeak-ng, kept in the kiosk's data folder.
    spoken = Path(result["announcement"])
    assert spoken == Announcer(Path(result["speech_dir"])).path_of("Julie vous appelle", "fr")
    assert 0.8 < result["announcement_s"] < 3.0

    heard = speaker(Path(result["speaker"]))
    voice, chime = wav(spoken), wav(Path(result["ringtone"]), seconds=1.2)
    said = peaks(correlation(heard, voice), FOUND, spacing_s=result["announcement_s"])
    chimed = peaks(correlation(heard, chime), FOUND, spacing_s=RINGTONE_SECONDS / 2)
    entered = result["entered_after_s"]
    print(
        f"announce: sentence on the screen {result['announcement_after_s']} s after the call "
        f"event (screen entering/entered {entered} s); heard the name at "
        f"{[round(float(t), 2) for t in said]} s, the chime at "
        f"{[round(float(t), 2) for t in chimed]} s of the speaker's file"
    )
    # Said, three chimes, said again (the scenario rings for 11 s); never a chime over the name.
    assert len(said) == 2, said
    between = [at for at in chimed if said[0] < at < said[1]]
    assert len(between) == 3, (said, chimed)
    length = result["announcement_s"]
    assert not [at for at in chimed if any(s - 1.2 < at < s + length for s in said)], (
        said,
        chimed,
    )
    after = [at for at in chimed if at > said[0]]
    # (Times are the file's: SDL's disk driver writes a little slower than the wall clock, and
    # Kivy restarts a looping sound from its clock, so gaps are only roughly the app's.)
    first_gap = after[0] - (said[0] + result["announcement_s"])
    assert 0 < first_gap < ANNOUNCE_GAP_S + 0.6, (said, chimed)
    assert abs((after[1] - after[0]) - RINGTONE_SECONDS) < LOOP_SLACK_S, chimed
    # Before the sentence was ready the tablet chimed at most once (never a silent screen).
    assert len([at for at in chimed if at < said[0]]) <= 1, (said, chimed)


def test_without_the_setting_the_tablet_only_chimes(
    results: dict[str, Any], tmp_path: Path
) -> None:
    result = result_of(results, "off")
    assert result["title"] == "Julie vous appelle" and result["announcement"] == ""
    assert not Path(result["speech_dir"]).exists()  # nothing synthesised, nothing kept

    heard = speaker(Path(result["speaker"]))
    reference = Announcer(tmp_path).speech("Julie vous appelle", "fr")
    assert reference is not None
    voice_corr = correlation(heard, wav(reference))
    chimed = peaks(correlation(heard, wav(Path(result["ringtone"]), 1.2)), FOUND, 1.0)
    print(
        f"announce off: the sentence's best correlation {float(voice_corr.max()):.3f}, the chime "
        f"at {[round(float(t), 2) for t in chimed]} s of the speaker's file"
    )
    assert float(voice_corr.max()) < 0.3, float(voice_corr.max())
    assert len(chimed) >= 3, chimed
    gaps = [b - a for a, b in zip(chimed, chimed[1:], strict=False)]
    assert all(abs(gap - RINGTONE_SECONDS) < LOOP_SLACK_S for gap in gaps), chimed


def test_calling_a_relative_says_who_is_called_once(results: dict[str, Any]) -> None:
    result = result_of(results, "outgoing")
    assert result["start_calls"] == ["ap-1"]
    spoken = Path(result["announcement"])
    assert spoken == Announcer(Path(result["speech_dir"])).path_of("On appelle Julie.", "fr")
    assert 0.8 < result["announcement_s"] < 3.0
    assert result["announcement_after_leave"] == ""  # the next call's sentence is its own

    heard = speaker(Path(result["speaker"]))
    said = peaks(correlation(heard, wav(spoken)), FOUND, spacing_s=result["announcement_s"])
    chime = correlation(heard, wav(Path(result["ringtone"]), 1.2))
    print(f"announce outgoing: heard 'On appelle Julie.' at {[round(float(t), 2) for t in said]} s")
    assert len(said) == 1, said
    assert float(chime.max()) < 0.3  # no chime when the tablet calls
