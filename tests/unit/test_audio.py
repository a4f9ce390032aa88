"""The tablet's audio path (kiosk/audio, docs/audio.md) piece by piece, on synthetic signals.

The echo canceller's figures on speech are in tests/integration/test_echo.py (bench/echo.py).
"""

from __future__ import annotations

import asyncio
import fractions
import json
from pathlib import Path

import av
import numpy as np
import pytest

from kiosk.audio import FRAME_SAMPLES, RATE, doubletalk, hearing, live
from kiosk.audio.chain import PLAYOUT_PREFILL_MS, AudioChain, volume_gain
from kiosk.audio.devices import (
    default_source_from_pw_dump,
    is_echo_cancel_node,
    probe,
)
from kiosk.audio.dsp import (
    Framer,
    Limiter,
    Resampler,
    SpeechBoost,
    db_to_gain,
    gain_to_db,
    rms_dbfs,
)
from kiosk.audio.hearing import HearingProfile, HearingProfiles
from kiosk.calls.audio import ProcessedMicrophoneTrack
from kiosk.calls.media import ToneAudioTrack


def sine(frequency: float, seconds: float, amplitude: float = 0.5, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def frames_of(samples: np.ndarray, size: int = FRAME_SAMPLES) -> list[np.ndarray]:
    return [samples[i : i + size] for i in range(0, samples.size - size + 1, size)]


def pcm(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples * 32768), -32768, 32767).astype(np.int16)


def audio_frame(samples: np.ndarray, rate: int = RATE, layout: str = "mono") -> av.AudioFrame:
    data = pcm(samples)
    if layout == "stereo":
        data = np.repeat(data, 2)
    frame = av.AudioFrame.from_ndarray(data.reshape(1, -1), format="s16", layout=layout)
    frame.sample_rate = rate
    frame.pts = 0
    frame.time_base = fractions.Fraction(1, rate)
    return frame


# --- speech boost ----------------------------------------------------------------------------


def test_speech_boost_lifts_1_to_4_khz_by_up_to_6_db_and_leaves_the_rest():
    boost = SpeechBoost()
    assert boost.response_db(2000) == pytest.approx(6.0, abs=0.05)
    for edge in (1000, 4000):
        assert 2.5 <= boost.response_db(edge) <= 4.5
    for outside in (100, 250, 12000):
        assert abs(boost.response_db(outside)) < 1.0


def test_speech_boost_measured_on_tones_in_10_ms_frames():
    gains = {}
    for frequency in (200, 2000):
        boost = SpeechBoost()
        out = np.concatenate([boost.process(f) for f in frames_of(sine(frequency, 0.5, 0.1))])
        settled = slice(RATE // 10, None)
        gains[frequency] = rms_dbfs(out[settled]) - rms_dbfs(sine(frequency, 0.5, 0.1)[settled])
    assert gains[2000] == pytest.approx(6.0, abs=0.3)
    assert abs(gains[200]) < 0.5


# --- limiter ---------------------------------------------------------------------------------


def test_limiter_never_lets_a_sample_over_the_ceiling():
    limiter = Limiter()
    loud = sine(1000, 0.5, amplitude=1.0) * db_to_gain(18)  # 18 dB over full scale
    out = np.concatenate([limiter.process(f) for f in frames_of(loud)])
    assert np.max(np.abs(out)) <= limiter.ceiling + 1e-6
    assert limiter.reduction_db > 15


def test_limiter_passes_quiet_audio_untouched_one_millisecond_later():
    limiter = Limiter()
    quiet = sine(440, 0.2, amplitude=0.25)
    out = np.concatenate([limiter.process(f) for f in frames_of(quiet)])
    delay = limiter.block
    np.testing.assert_allclose(out[delay:], quiet[:-delay], atol=1e-6)


def test_limiter_recovers_after_a_peak():
    limiter = Limiter()
    burst = np.concatenate([sine(1000, 0.05, amplitude=1.0) * 4, sine(1000, 0.5, amplitude=0.3)])
    out = np.concatenate([limiter.process(f) for f in frames_of(burst)])
    tail = out[-RATE // 10 :]
    assert rms_dbfs(tail) == pytest.approx(rms_dbfs(sine(1000, 0.1, amplitude=0.3)), abs=0.2)


# --- framing and resampling ------------------------------------------------------------------


def test_framer_cuts_any_lengths_into_exact_frames():
    framer = Framer(480)
    stream = np.arange(2000, dtype=np.int16)
    for chunk in np.split(stream, [7, 500, 960, 1700]):
        framer.push(chunk)
    frames = []
    while (frame := framer.pop()) is not None:
        frames.append(frame)
    assert [f.size for f in frames] == [480] * 4
    np.testing.assert_array_equal(np.concatenate(frames), stream[:1920])
    assert len(framer) == 80


@pytest.mark.parametrize("device_rate", [44100, 16000])
def test_resampler_takes_a_device_rate_to_48_khz_and_keeps_the_pitch(device_rate: int):
    resampler = Resampler(RATE)
    tone = pcm(sine(1000, 1.0, rate=device_rate))
    blocks = frames_of(tone, device_rate // 100)
    out = np.concatenate([resampler.pcm(f, device_rate) for f in blocks])
    assert abs(out.size - RATE) < 200  # whatever swresample keeps in its filter
    spectrum = np.abs(np.fft.rfft(out[1000 : 1000 + RATE // 2].astype(np.float64)))
    peak_hz = np.argmax(spectrum) * RATE / (RATE // 2)
    assert peak_hz == pytest.approx(1000, abs=4)


def test_resampler_takes_aiortc_stereo_frames_to_mono():
    resampler = Resampler(RATE)
    out = resampler.frame(audio_frame(sine(440, 0.02), layout="stereo"))
    assert out.dtype == np.int16 and out.ndim == 1
    assert abs(out.size - 960) <= 64


# --- hearing settings ------------------------------------------------------------------------


def test_hearing_profiles_round_trip_and_stay_on_the_grid(tmp_path: Path):
    profiles = HearingProfiles(tmp_path)
    assert profiles.get("r1") == HearingProfile()
    profiles.set("r1", HearingProfile(boost_db=7.0, speech_boost=True))
    assert profiles.get("r1") == HearingProfile(boost_db=6.0, speech_boost=True)
    assert HearingProfiles(tmp_path).all() == {"r1": HearingProfile(6.0, True)}
    assert HearingProfile(boost_db=12.0).stepped(1).boost_db == 12.0
    assert HearingProfile().stepped(-1).boost_db == 0.0
    assert HearingProfile(boost_db=9.0).level == 3


def test_a_damaged_hearing_file_reads_as_defaults_and_is_rewritten(tmp_path: Path):
    (tmp_path / "hearing.json").write_text("{not json")
    profiles = HearingProfiles(tmp_path)
    assert profiles.get("r1") == HearingProfile()
    profiles.set("r2", HearingProfile(boost_db=3.0))
    assert json.loads((tmp_path / "hearing.json").read_text()) == {
        "r2": {"boost_db": 3.0, "speech_boost": False, "announce": False}
    }
    with pytest.raises(ValueError):
        profiles.set("", HearingProfile())


# --- the chain -------------------------------------------------------------------------------


def test_volume_maps_to_a_gain():
    assert volume_gain(1.0) == 1.0
    assert volume_gain(0.0) == 0.0
    assert gain_to_db(volume_gain(0.5)) == pytest.approx(-12.0)


def play_through(chain: AudioChain, far: np.ndarray, seconds: float) -> np.ndarray:
    """Push ``far`` as 20 ms aiortc-like frames while the chain ticks; what the speaker played."""
    speaker = []
    silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    for i, chunk in enumerate(frames_of(far, 960)):
        chain.push_far(audio_frame(chunk, layout="stereo"))
        speaker.append(chain.tick(silence))
        speaker.append(chain.tick(silence))
        if (i + 1) * 0.02 >= seconds:
            break
    return np.concatenate(speaker).astype(np.float32) / 32768


def test_the_residents_boost_and_the_volume_set_the_speakers_level():
    far = sine(500, 1.0, amplitude=0.05)
    levels = {}
    for name, profile, volume in (
        ("flat", HearingProfile(), 1.0),
        ("boost", HearingProfile(boost_db=9.0), 1.0),
        ("half_volume", HearingProfile(), 0.5),
    ):
        chain = AudioChain(profile=profile, volume=volume)
        levels[name] = rms_dbfs(play_through(chain, far, 1.0)[RATE // 5 :])
    assert levels["boost"] - levels["flat"] == pytest.approx(9.0, abs=0.3)
    assert levels["half_volume"] - levels["flat"] == pytest.approx(-12.0, abs=0.3)


def test_a_loud_relative_with_every_boost_never_clips_the_speaker():
    chain = AudioChain(profile=HearingProfile(boost_db=12.0, speech_boost=True))
    played = play_through(chain, sine(2000, 1.0, amplitude=0.9), 1.0)
    assert np.max(np.abs(played)) <= db_to_gain(-1.0) + 1e-4
    assert chain.stats.limited_frames > 0


def test_the_playout_buffer_waits_for_its_prefill_then_plays_every_frame():
    chain = AudioChain()
    silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    chain.push_far(audio_frame(sine(440, 0.01)))  # 10 ms: less than the prefill
    chain.tick(silence)
    assert chain.stats.far_frames == 0
    played = play_through(chain, sine(440, 1.0, amplitude=0.1), 1.0)
    assert played.size == 100 * FRAME_SAMPLES
    assert chain.stats.underruns == 0
    assert chain.stats.far_frames >= 100 - PLAYOUT_PREFILL_MS // 10
    assert chain.stats.frames == 101


def test_the_chain_cancels_a_plain_echo_of_what_the_speaker_plays():
    """White noise from the far end comes back 30 ms later, -6 dB: the canceller removes it."""
    rng = np.random.default_rng(3)
    chain = AudioChain()
    far = (rng.standard_normal(RATE * 4) * 0.05).astype(np.float32)
    delay = 30 * RATE // 1000
    echo = np.zeros_like(far)
    echo[delay:] = far[:-delay] * 0.5
    heard, left = [], []
    for i, (mic, speaker) in enumerate(zip(frames_of(echo), frames_of(far), strict=True)):
        cleaned, sent = chain.process_near(pcm(mic), pcm(speaker))
        assert sent.size == FRAME_SAMPLES
        if i >= 200:  # after 2 s
            heard.append(rms_dbfs(mic))
            left.append(rms_dbfs(cleaned.astype(np.float32) / 32768))
    assert np.mean(heard) - np.mean(left) > 20
    assert chain.stats.frames == 400


def test_speex_linear_stage_removes_a_linear_echo_and_leaves_the_voice_alone():
    from kiosk.audio import speex

    assert speex.available(), "libspeexdsp1 is missing (SYSTEM_PACKAGES in the Makefile)"
    rng = np.random.default_rng(5)
    linear = speex.LinearEchoFilter()
    far = (rng.standard_normal(RATE * 4) * 0.05).astype(np.float32)
    delay = 40 * RATE // 1000
    echo = np.zeros_like(far)
    echo[delay:] = far[:-delay] * 0.5
    heard, left = [], []
    for i, (mic, speaker) in enumerate(zip(frames_of(echo), frames_of(far), strict=True)):
        out = linear.process(pcm(mic), pcm(speaker))
        if i >= 200:
            heard.append(rms_dbfs(mic))
            left.append(rms_dbfs(out.astype(np.float32) / 32768))
    assert np.mean(heard) - np.mean(left) > 10
    # With nothing playing, the resident goes through untouched.
    voice = pcm(sine(1000, 0.2, amplitude=0.2))
    silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    fresh = speex.LinearEchoFilter()
    through = np.concatenate([fresh.process(f, silence) for f in frames_of(voice)])
    settled = slice(RATE // 20, through.size)  # past its DC filter's start
    kept = np.corrcoef(through[settled].astype(float), voice[settled].astype(float))[0, 1]
    assert kept > 0.95  # its DC notch shifts the phase a little
    level = rms_dbfs(through[settled] / 32768) - rms_dbfs(voice[settled] / 32768)
    assert abs(level) < 1.0
    fresh.close()
    with pytest.raises(ValueError):
        linear.process(voice[:100], silence[:100])
    assert AudioChain().stats_dict()["linear_stage"] is True
    assert AudioChain(linear_stage=False).stats_dict()["linear_stage"] is False
    assert AudioChain(cancel_echo=False).stats_dict()["linear_stage"] is False


# --- double talk (kiosk/audio/doubletalk.py) -----------------------------------------------


def detector_frames(residual_db: float, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """An echo estimate of noise at -20 dBFS and a residual ``residual_db`` from it."""
    rng = np.random.default_rng(seed)
    echo = rng.standard_normal(FRAME_SAMPLES).astype(np.float32) * 0.1
    noise = rng.standard_normal(FRAME_SAMPLES).astype(np.float32) * 0.1
    return pcm(noise * np.float32(10 ** (residual_db / 20))), pcm(echo)


def converged_detector() -> doubletalk.DoubleTalkDetector:
    """A detector that has seen Speex leave 15 dB less than the echo for two seconds."""
    detector = doubletalk.DoubleTalkDetector()
    leak, echo = detector_frames(-15.0)
    assert not any(detector.update(leak, echo) for _ in range(200))
    assert detector.converged
    return detector


def test_double_talk_is_a_residual_louder_than_speexs_echo_estimate_with_a_hangover():
    detector = converged_detector()
    leak, echo = detector_frames(-15.0)
    voice, _ = detector_frames(6.0)
    silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    # Nothing at all: no decision either way.
    assert not detector.update(silence, silence)
    # The resident over the relative: the residual is 6 dB over the echo estimate.
    assert detector.update(voice, echo)
    # They pause: double talk holds for the hangover, then ends.
    held = [detector.update(leak, echo) for _ in range(doubletalk.HANGOVER_FRAMES + 5)]
    assert all(held[: doubletalk.HANGOVER_FRAMES])
    assert not any(held[doubletalk.HANGOVER_FRAMES :])


def test_no_double_talk_before_speex_converged_nor_after_the_echo_path_changed():
    """At the start of a call, or when the tablet moved, Speex's residual is the echo itself:
    it is as loud as the echo estimate, and then louder in places. That is not the resident."""
    detector = doubletalk.DoubleTalkDetector()
    converging, echo = detector_frames(-1.0)
    burst, _ = detector_frames(6.0)
    for _ in range(100):
        detector.update(converging, echo)
        assert not detector.update(burst, echo)
    assert not detector.converged
    detector = converged_detector()
    assert detector.update(burst, echo)
    for _ in range(200):  # the echo path changed: Speex leaks as much as it removes
        detector.update(converging, echo)
    assert not detector.converged
    assert not detector.update(burst, echo)


def mix_frames(
    mixer: doubletalk.DoubleTalkMixer,
    suppressed: np.ndarray,
    gentle: np.ndarray,
    talking: list[bool],
) -> np.ndarray:
    """Run the mixer over whole signals; ``talking`` says per frame whether the residual is the
    resident's (6 dB over the echo estimate) or leaking echo (15 dB under it)."""
    voice, echo = detector_frames(6.0)
    leak, _ = detector_frames(-15.0)
    out = []
    for i, (a, g) in enumerate(zip(frames_of(suppressed), frames_of(gentle), strict=True)):
        residual = voice if talking[i] else leak
        microphone = (residual.astype(np.int32) + echo.astype(np.int32)).astype(np.int16)
        out.append(mixer.process(a, g, residual, microphone))
    return np.concatenate(out)


def test_the_mixer_sends_aec3s_output_for_the_far_end_and_the_gentle_path_in_double_talk():
    frames = 60
    aec3 = pcm(sine(440, frames / 100, amplitude=0.1))
    gentle = pcm(sine(440, frames / 100, amplitude=0.2))  # AEC3 took 6 dB of the voice
    talking = [20 <= i < 30 for i in range(frames)]
    mixer = doubletalk.DoubleTalkMixer(converged_detector(), gentle_delay=0)
    out = mix_frames(mixer, aec3, gentle, talking)
    # Far end only: exactly AEC3's output.
    assert np.array_equal(out[: 21 * FRAME_SAMPLES], aec3[: 21 * FRAME_SAMPLES])
    # Double talk (decided on one frame, applied from the next, over a two-frame ramp): the
    # gentle path's output, exactly.
    steady = slice(23 * FRAME_SAMPLES, 31 * FRAME_SAMPLES)
    assert np.array_equal(out[steady], gentle[steady])
    # After the hangover and the ramp back: AEC3's output again.
    back = (31 + doubletalk.HANGOVER_FRAMES + doubletalk.RAMP_FRAMES) * FRAME_SAMPLES
    assert np.array_equal(out[back:], aec3[back:])
    assert mixer.gentle_frames == 10 + doubletalk.HANGOVER_FRAMES + doubletalk.RAMP_FRAMES
    # No click at either switch: no step between samples larger than the louder sine's own.
    largest_step = np.max(np.abs(np.diff(gentle.astype(np.int32))))
    assert np.max(np.abs(np.diff(out.astype(np.int32)))) <= largest_step + 2


def test_the_mixer_keeps_aec3s_output_when_aec3_removed_much_more_than_the_gentle_path_has():
    """Speex misadjusted (the echo path changed): its residual looks like double talk, but AEC3
    removes 20 dB of it, so it is echo: the mixer stays on AEC3."""
    frames = 30
    aec3 = pcm(sine(440, frames / 100, amplitude=0.01))
    gentle = pcm(sine(440, frames / 100, amplitude=0.1))
    mixer = doubletalk.DoubleTalkMixer(converged_detector(), gentle_delay=0)
    out = mix_frames(mixer, aec3, gentle, [True] * frames)
    assert np.array_equal(out, aec3)
    assert mixer.gentle_frames == 0


def test_the_gentle_path_lines_up_with_aec3s_output_sample_for_sample():
    """The two WebRTC modules of the chain (with and without AEC3) differ by exactly
    AEC3_EXTRA_DELAY_SAMPLES: the crossfade mixes the same instant of the resident's voice."""
    import pywebrtc_audio

    def module(aec: bool) -> pywebrtc_audio.AudioProcessor:
        return pywebrtc_audio.AudioProcessor(
            sample_rate=RATE,
            num_channels=1,
            echo_cancellation=aec,
            noise_suppression=True,
            high_pass_filter=True,
        )

    with_aec3, without = module(True), module(False)
    voice = pcm(
        (sine(300, 2.0, 0.1) + sine(1200, 2.0, 0.05) + sine(2900, 2.0, 0.03)).astype(np.float32)
    )
    silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    aligned = doubletalk.DelayLine(doubletalk.AEC3_EXTRA_DELAY_SAMPLES)
    a, g = [], []
    for f in frames_of(voice):
        a.append(np.asarray(with_aec3.process(f, silence), dtype=np.int16))
        g.append(aligned.process(np.asarray(without.process(f), dtype=np.int16)))
    settled = slice(RATE, 2 * RATE)
    a_, g_ = np.concatenate(a)[settled].astype(float), np.concatenate(g)[settled].astype(float)

    def corr(lag: int) -> float:
        return float(np.corrcoef(a_[100 + lag : -100 + lag], g_[100:-100])[0, 1])

    assert corr(0) > 0.95
    assert corr(0) > max(corr(-8), corr(8)) + 0.02


def test_the_chain_runs_the_double_talk_path_only_behind_speex():
    assert AudioChain().stats_dict()["double_talk"] is True
    assert AudioChain(double_talk=False).stats_dict()["double_talk"] is False
    assert AudioChain(linear_stage=False).stats_dict()["double_talk"] is False
    assert AudioChain(cancel_echo=False).stats_dict()["double_talk"] is False


def test_with_pipewires_canceller_the_chain_does_not_cancel_twice():
    chain = AudioChain(cancel_echo=False)
    assert chain.stats_dict()["echo_cancel"] == "system"
    assert AudioChain().stats_dict()["echo_cancel"] == "app"


# --- devices ---------------------------------------------------------------------------------


def test_echo_cancelled_sources_are_recognised():
    assert is_echo_cancel_node("liens_echo_cancel_source")
    assert is_echo_cancel_node("echo-cancel-source")
    assert not is_echo_cancel_node("alsa_input.platform-bcm2835_audio.analog-stereo")
    assert not is_echo_cancel_node("")


def test_the_kiosk_pipewire_dropin_source_is_recognised_so_the_app_does_not_cancel_twice():
    import re

    dropin = Path(__file__).resolve().parents[2] / "deploy/kiosk/50-liens-echo-cancel.conf"
    text = dropin.read_text()
    source = re.search(r"source\.props\s*=\s*\{[^}]*node\.name\s*=\s*\"([^\"]+)\"", text)
    assert source is not None
    assert is_echo_cancel_node(source.group(1))


def test_the_default_source_is_read_from_pw_dump():
    dump = [
        {"id": 30, "type": "PipeWire:Interface:Node", "props": {"node.name": "x"}},
        {
            "id": 31,
            "type": "PipeWire:Interface:Metadata",
            "props": {"metadata.name": "default"},
            "metadata": [
                {"subject": 0, "key": "default.audio.sink", "value": {"name": "liens_sink"}},
                {
                    "subject": 0,
                    "key": "default.audio.source",
                    "value": {"name": "liens_echo_cancel_source"},
                },
            ],
        },
    ]
    assert default_source_from_pw_dump(dump) == "liens_echo_cancel_source"
    assert default_source_from_pw_dump([]) == ""
    assert default_source_from_pw_dump({"not": "a list"}) == ""


def test_this_machine_without_a_sound_card_reports_no_microphone_and_no_speaker():
    state = probe()
    assert state.microphone is not True and state.speaker is not True
    assert state.system_echo_cancel is False


# --- the call's track and the in-call buttons ------------------------------------------------


def test_the_synthetic_microphone_goes_through_the_chain_into_the_call():
    async def scenario() -> tuple[list[av.AudioFrame], AudioChain]:
        chain = AudioChain()
        track = ProcessedMicrophoneTrack(chain, ToneAudioTrack())
        chain.push_far(audio_frame(sine(300, 0.1, amplitude=0.1)))
        frames = [await track.recv() for _ in range(10)]
        track.stop()
        return frames, chain

    frames, chain = asyncio.run(scenario())
    assert [f.samples for f in frames] == [960] * 10
    assert all(f.sample_rate == RATE and f.layout.name == "mono" for f in frames)
    assert [f.pts for f in frames] == [i * 960 for i in range(10)]
    assert chain.stats.frames == 20
    assert chain.stats.far_frames == 10  # the far end's 100 ms were played meanwhile
    assert chain.stats.dropped == 0
    # The tone comes through (noise suppression keeps a steady tone mostly).
    level = rms_dbfs(np.concatenate([f.to_ndarray().reshape(-1) for f in frames[5:]]) / 32768)
    assert level > -40


def test_call_audio_without_a_sound_card_runs_the_chain_on_the_synthetic_microphone(
    tmp_path: Path,
):
    from kiosk.calls.audio import open_call_audio

    hearing.use_data_dir(tmp_path)
    HearingProfiles(tmp_path).set("r3", HearingProfile(boost_db=6.0, speech_boost=True))
    state = probe()
    if state.microphone and state.speaker:
        pytest.skip("this machine has a microphone and a speaker")
    audio = open_call_audio("auto", ToneAudioTrack(), resident_id="r3")
    try:
        assert audio.device is None
        assert audio.chain.profile == HearingProfile(boost_db=6.0, speech_boost=True)
        assert live.current() is not None and live.current().resident_id == "r3"
        assert audio.stats()["device"] is False
        assert "no sound device" in audio.description
    finally:
        audio.stop()
    assert live.current() is None
    with pytest.raises(OSError, match="no microphone"):
        open_call_audio("devices", ToneAudioTrack(), resident_id="r3")


def test_in_call_buttons_change_the_live_boost_and_remember_it(tmp_path: Path):
    hearing.use_data_dir(tmp_path)
    chain = AudioChain(profile=HearingProfile(boost_db=3.0))
    assert live.change_boost(1) is None  # no call
    live.attach(chain, "r7")
    try:
        assert live.level() == 1
        assert live.change_boost(1) == HearingProfile(boost_db=6.0)
        assert chain.gain_db == pytest.approx(6.0, abs=0.01)
        for _ in range(5):
            live.change_boost(1)
        assert live.level() == 4
        assert hearing.profiles().get("r7") == HearingProfile(boost_db=12.0)
    finally:
        live.detach(chain)
    assert live.level() is None
