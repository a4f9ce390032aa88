"""Spoken announcements (kiosk.speech): the real espeak-ng, its WAV files, their cache."""

from __future__ import annotations

import logging
import wave
from pathlib import Path

import numpy as np
import pytest

from kiosk import speech
from kiosk.audio.hearing import HearingProfile, HearingProfiles
from kiosk.speech import Announcer, voice_for, wav_seconds


def samples(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as f:
        assert f.getnchannels() == 1 and f.getsampwidth() == 2
        data = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
        return data.astype(np.float64) / 32768.0, f.getframerate()


def test_the_caller_is_said_in_french_in_a_wav_file_of_speech(tmp_path: Path) -> None:
    path = Announcer(tmp_path).speech("Julie vous appelle", "fr")
    assert path is not None and path.parent == tmp_path and path.suffix == ".wav"
    audio, rate = samples(path)
    seconds = audio.size / rate
    # Five syllables at 135 words a minute: about a second and a half, not a click, not a minute.
    assert 0.8 < seconds < 3.0, seconds
    rms = float(np.sqrt(np.mean(audio**2)))
    assert rms > 0.03, rms
    # Speech has pauses and bursts: the loudest 50 ms is far above the quietest.
    frame = rate // 20
    frames = audio[: audio.size // frame * frame].reshape(-1, frame)
    energy = np.sqrt(np.mean(frames**2, axis=1))
    assert energy.max() > 10 * max(energy.min(), 1e-6)


def test_a_sentence_is_synthesised_once_then_read_from_the_cache(tmp_path: Path) -> None:
    announcer = Announcer(tmp_path)
    first = announcer.speech("Thomas vous appelle", "fr")
    assert first is not None
    made = first.stat().st_mtime_ns
    announcer.binary = "no-such-speech-engine"  # a second synthesis would fail
    again = announcer.speech("  Thomas   vous appelle ", "fr")  # same words, other spaces
    assert again == first and wav_seconds(again) > 0
    assert first.stat().st_mtime_ns >= made
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]


def test_each_language_has_its_voice_and_the_rate_is_slow(tmp_path: Path) -> None:
    assert voice_for("fr") == "fr" and voice_for("en") == "en-gb"
    assert voice_for("fr_FR.UTF-8") == "fr" and voice_for("de") == "fr" and voice_for(None) == "fr"
    announcer = Announcer(tmp_path)
    french = announcer.speech("Julie is calling you", "fr")
    english = announcer.speech("Julie is calling you", "en")
    assert french is not None and english is not None and french != english
    faster = Announcer(tmp_path, rate_wpm=175).speech("Julie is calling you", "en")
    assert faster is not None and faster != english
    assert wav_seconds(english) > 1.15 * wav_seconds(faster)


def test_a_name_that_looks_like_an_option_is_read_not_obeyed(tmp_path: Path) -> None:
    announcer = Announcer(tmp_path)
    plain = announcer.speech("Zoé vous appelle", "fr")
    odd = announcer.speech("-v Zoé vous appelle", "fr")  # words on stdin, never argv
    assert plain is not None and odd is not None
    assert wav_seconds(odd) > wav_seconds(plain)


def test_no_engine_or_no_words_is_silence_and_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    announcer = Announcer(tmp_path, binary="no-such-speech-engine")
    with caplog.at_level(logging.WARNING, logger="kiosk.speech"):
        assert announcer.speech("Julie vous appelle", "fr") is None
        assert announcer.speech("Thomas vous appelle", "fr") is None
    assert len(caplog.records) == 1 and "chime only" in caplog.records[0].getMessage()
    assert Announcer(tmp_path).speech("   ", "fr") is None
    assert list(tmp_path.glob("*.wav")) == []


def test_the_folder_keeps_the_most_recent_sentences_and_is_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(speech, "MAX_FILES", 3)
    announcer = speech.announcer_for(tmp_path)
    assert announcer.cache_dir == tmp_path / "speech"
    paths = [announcer.speech(f"Contact {n} vous appelle", "fr") for n in range(5)]
    kept = sorted(p.name for p in announcer.cache_dir.glob("*.wav"))
    assert len(kept) == 3
    assert paths[-1] is not None and paths[-1].name in kept
    assert not list(announcer.cache_dir.glob("*.tmp"))
    speech.forget(tmp_path)
    assert not announcer.cache_dir.exists()


def test_the_announce_setting_is_kept_with_the_hearing_setting(tmp_path: Path) -> None:
    profiles = HearingProfiles(tmp_path)
    profiles.set("r1", HearingProfile(boost_db=3.0, announce=True))
    assert HearingProfiles(tmp_path).get("r1") == HearingProfile(boost_db=3.0, announce=True)
    # A file written before the setting existed: no announcement.
    (tmp_path / "hearing.json").write_text('{"r2": {"boost_db": 6.0, "speech_boost": true}}')
    assert HearingProfiles(tmp_path).get("r2") == HearingProfile(6.0, True, False)
    # The in-call "+" keeps it.
    assert HearingProfile(announce=True).stepped(1).announce is True


def test_enrolling_the_tablet_again_forgets_the_spoken_names(tmp_path: Path) -> None:
    from kiosk.core import KioskCore
    from kiosk.settings import KioskSettings

    core = KioskCore(KioskSettings(data_dir=tmp_path))
    try:
        assert speech.announcer_for(tmp_path).speech("Julie vous appelle", "fr") is not None
        core.forget_enrolment()
        assert not (tmp_path / speech.FOLDER).exists()
    finally:
        core.close()
