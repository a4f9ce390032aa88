"""The tablet's echo canceller on French speech, through a simulated room, per echo delay.

    python -m bench.echo [--delays 20 60 120] [--seed 1]

Two French speech clips are made with ``espeak-ng``: the relative (far end, voice ``fr``) and the
resident (near end, voice ``fr+f3``, another sentence). The far end is "played" through a
simulated echo path — a delay, a room impulse response (a direct path and an exponentially
decaying diffuse tail, RT60 300 ms), a gain — into the microphone; the resident speaks over it
from :data:`DOUBLE_TALK_START_S` on (double talk), with a little microphone noise. The mixture
goes through the kiosk's own audio chain (:class:`kiosk.audio.chain.AudioChain`: Speex's linear
canceller when libspeexdsp is installed, then WebRTC's AEC3, high-pass and noise suppression,
and in double talk a crossfade to Speex's output, :mod:`kiosk.audio.doubletalk`) in 10 ms
frames, with the far end as the speaker's reference.

Measured, per delay:

- ``erle_db``: echo return loss enhancement in the far-end-only part, after
  :data:`CONVERGENCE_S` of convergence: the echo's energy at the microphone over the energy left
  at the canceller's output (target >= 25 dB);
- ``near_kept``: in double talk, the correlation of the output with the clean near-end speech
  (best alignment within 20 ms; target >= 0.9), and ``near_delay_ms``, that alignment;
- ``near_gain_db``: how much of the near end's level the output keeps in double talk.

``comparisons`` gives the same figures, in the same run, for :data:`VARIANTS`: the chain without
its double-talk path, AEC3 alone, Speex's linear stage alone and the raw microphone.

And once: ``cpu`` — the whole audio path of a call (the far end's resampling, playout buffer,
speech boost, gain and limiter; the canceller, noise suppression and automatic gain), CPU time
over audio time (``cpu_without_double_talk``: the same without the double-talk path, in % of a
core); ``latency_ms`` — the delay the path adds on each side (buffers and filters;
the sound card's own buffers come on top: ``DuplexDevice.latency_ms`` on a real tablet).

The output is measured before the automatic gain stage (which would scale the residual echo
with the voice); the gain stage's cost is in ``cpu``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import fractions
import json
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from scipy.signal import fftconvolve, resample_poly

from kiosk.audio import FRAME_MS, FRAME_SAMPLES, RATE, speex
from kiosk.audio.chain import PLAYOUT_PREFILL_MS, AudioChain
from kiosk.audio.dsp import LIMITER_LOOKAHEAD_MS, to_float, to_pcm
from kiosk.audio.hearing import HearingProfile
from kiosk.audio.speex import LinearEchoFilter

Signal = npt.NDArray[np.float64]

FAR_TEXT = (
    "Bonjour maman, c'est Julie. Nous avons passé un très bon week-end à la mer avec les "
    "enfants. Il faisait beau, nous avons mangé des crêpes et Léo a construit un grand château "
    "de sable. Tu nous manques beaucoup, nous viendrons te voir dimanche après-midi."
)
NEAR_TEXT = (
    "Oh ma chérie, quel plaisir de t'entendre. Ici tout va bien, le repas était bon et "
    "l'animatrice nous a fait chanter."
)
FAR_VOICE = "fr"
NEAR_VOICE = "fr+f3"
CONVERGENCE_S = 2.0
DOUBLE_TALK_START_S = 9.0
FAR_LEVEL_DBFS = -20.0  # what the speaker plays
ECHO_GAIN_DB = -6.0  # speaker to microphone, a tablet's speaker a few centimetres away
NEAR_LEVEL_DBFS = -24.0  # the resident's voice at the microphone
NOISE_DBFS = -65.0
RT60_S = 0.3
DIRECT_TO_REVERB_DB = 5.0
DELAYS_MS = (20, 60, 120)
MAX_ALIGNMENT_MS = 20
TARGET_ERLE_DB = 25.0
TARGET_NEAR_KEPT = 0.9
# What the chain is compared with: Speex and AEC3 without the double-talk path, AEC3 alone,
# Speex's linear stage alone, the microphone with no processing.
VARIANTS = ("chain", "no_double_talk", "aec3_alone", "speex_alone", "microphone")


class EspeakMissing(RuntimeError):
    """espeak-ng is needed to make the speech clips."""


def speech(text: str, voice: str, speed: int = 150) -> Signal:
    """``text`` spoken by espeak-ng's ``voice``, as float samples at 48 kHz."""
    if shutil.which("espeak-ng") is None:
        raise EspeakMissing(
            "espeak-ng is not installed: the echo bench makes its French speech with it "
            "(`apt-get install espeak-ng`; `make test` installs it, see SYSTEM_PACKAGES)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text],
            check=True,
            capture_output=True,
            timeout=60,
        )
        with wave.open(str(path)) as wav:
            rate = wav.getframerate()
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    samples = pcm.astype(np.float64) / 32768.0
    if rate != RATE:
        from math import gcd

        g = gcd(RATE, rate)
        samples = resample_poly(samples, RATE // g, rate // g)
    return np.asarray(samples, dtype=np.float64)


def at_level(samples: Signal, dbfs: float) -> Signal:
    """``samples`` scaled so that their speech (the louder half of 10 ms frames) is at ``dbfs``."""
    frames = samples[: samples.size // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    power = np.mean(frames**2, axis=1)
    active = power[power >= np.median(power)]
    rms = float(np.sqrt(np.mean(active))) if active.size else 1e-9
    return samples * (10 ** (dbfs / 20) / max(rms, 1e-9))


def room_impulse_response(rng: np.random.Generator) -> Signal:
    """A direct path and an exponentially decaying diffuse tail (RT60 :data:`RT60_S`), unit
    energy."""
    length = int(RT60_S * 0.8 * RATE)
    t = np.arange(length) / RATE
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / RT60_S)
    tail[:48] *= np.linspace(0.0, 1.0, 48)  # the first reflections arrive after ~1 ms
    tail *= 10 ** (-DIRECT_TO_REVERB_DB / 20) / np.sqrt(np.sum(tail**2))
    tail[0] += 1.0
    return np.asarray(tail / np.sqrt(np.sum(tail**2)), dtype=np.float64)


@dataclass
class Clips:
    far: Signal
    near: Signal


def make_clips() -> Clips:
    far = at_level(speech(FAR_TEXT, FAR_VOICE, 150), FAR_LEVEL_DBFS)
    near = at_level(speech(NEAR_TEXT, NEAR_VOICE, 140), NEAR_LEVEL_DBFS)
    return Clips(far=far, near=near)


def best_correlation(output: Signal, clean: Signal) -> tuple[float, int]:
    """The highest correlation of ``output`` with ``clean`` delayed by 0..20 ms, and that delay."""
    best, best_lag = -1.0, 0
    for lag in range(0, MAX_ALIGNMENT_MS * RATE // 1000, 8):
        c = float(np.corrcoef(output[lag:], clean[: clean.size - lag])[0, 1])
        if c > best:
            best, best_lag = c, lag
    for lag in range(max(0, best_lag - 8), best_lag + 8):
        c = float(np.corrcoef(output[lag:], clean[: clean.size - lag])[0, 1])
        if c > best:
            best, best_lag = c, lag
    return best, best_lag


def process(variant: str, microphone: Signal, far: Signal) -> Signal:
    """The microphone through one of :data:`VARIANTS`, 10 ms at a time, with ``far`` as the
    speaker's reference; the canceller's output (before the automatic gain)."""
    n = microphone.size
    output = np.zeros(n)
    mic_pcm = to_pcm(microphone.astype(np.float32))
    far_pcm = to_pcm(far.astype(np.float32))
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: one of {VARIANTS}")
    if variant == "microphone":
        return np.asarray(to_float(mic_pcm), dtype=np.float64)
    linear = LinearEchoFilter() if variant == "speex_alone" else None
    chain = AudioChain(linear_stage=variant != "aec3_alone", double_talk=variant == "chain")
    for i in range(n // FRAME_SAMPLES):
        frame = slice(i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES)
        if linear is not None:
            cleaned = linear.process(mic_pcm[frame], far_pcm[frame])
        else:
            cleaned, _ = chain.process_near(mic_pcm[frame], far_pcm[frame])
        output[frame] = to_float(cleaned)
    return output


def measure_delay(
    clips: Clips, delay_ms: int, seed: int = 1, variant: str = "chain"
) -> dict[str, Any]:
    """ERLE and near end kept for one echo delay, through the chain or one of the
    comparisons (:data:`VARIANTS`)."""
    rng = np.random.default_rng(seed + delay_ms)
    far = clips.far
    n = far.size // FRAME_SAMPLES * FRAME_SAMPLES
    far = far[:n]
    delay = delay_ms * RATE // 1000
    echo = np.zeros(n)
    echo[delay:] = fftconvolve(far, room_impulse_response(rng))[: n - delay]
    echo *= 10 ** (ECHO_GAIN_DB / 20)
    start = int(DOUBLE_TALK_START_S * RATE)
    near = np.zeros(n)
    length = min(clips.near.size, n - start)
    near[start : start + length] = clips.near[:length]
    microphone = echo + near + rng.standard_normal(n) * 10 ** (NOISE_DBFS / 20)

    output = process(variant, microphone, far)
    converged = int(CONVERGENCE_S * RATE)
    erle = 10 * np.log10(np.sum(echo[converged:start] ** 2) / np.sum(output[converged:start] ** 2))
    double_talk = slice(start, start + length)
    kept, lag = best_correlation(output[double_talk], near[double_talk])
    aligned = output[double_talk][lag:]
    clean = near[double_talk][: aligned.size]
    gain = float(np.dot(aligned, clean) / np.dot(clean, clean))
    return {
        "delay_ms": delay_ms,
        "erle_db": round(float(erle), 1),
        "near_kept": round(kept, 3),
        "near_delay_ms": round(lag * 1000 / RATE, 1),
        "near_gain_db": round(20 * np.log10(max(gain, 1e-6)), 1),
        "signal_to_echo_db": round(
            float(10 * np.log10(np.sum(clean**2) / np.sum(echo[double_talk] ** 2))), 1
        ),
    }


def path_cost(clips: Clips, seconds: float = 10.0, double_talk: bool = True) -> dict[str, Any]:
    """CPU time of the whole audio path over ``seconds`` of call, as the call runs it: the far
    end arrives as 20 ms stereo frames (aiortc's Opus decoder), the microphone in 10 ms."""
    chain = AudioChain(
        profile=HearingProfile(boost_db=6.0, speech_boost=True),
        volume=0.8,
        double_talk=double_talk,
    )
    far_pcm = to_pcm(clips.far.astype(np.float32))
    mic_pcm = to_pcm((clips.near * 0.5).astype(np.float32))
    steps = int(seconds * 1000 / FRAME_MS)
    wall = time.perf_counter()
    for i in range(steps):
        if i % 2 == 0:
            chunk = far_pcm[(i // 2 * 960) % (far_pcm.size - 960) :][:960]
            stereo = np.repeat(chunk, 2).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
            frame.sample_rate = RATE
            frame.pts = i * FRAME_SAMPLES
            frame.time_base = fractions.Fraction(1, RATE)
            chain.push_far(frame)
        mic = mic_pcm[(i * FRAME_SAMPLES) % (mic_pcm.size - FRAME_SAMPLES) :][:FRAME_SAMPLES]
        chain.tick(mic)
        chain.pop_outgoing()
    wall = time.perf_counter() - wall
    stats = chain.stats_dict()
    return {
        "audio_s": seconds,
        "cpu_s": stats["cpu_s"],
        "cpu_per_audio_s": stats["cpu_per_audio_s"],
        "percent_of_one_core": round(100 * stats["cpu_s"] / seconds, 2),
        "wall_per_audio_s": round(wall / seconds, 4),
        "far_frames_played": stats["far_frames"],
        "underruns": stats["underruns"],
    }


def latency(delays: list[dict[str, Any]]) -> dict[str, Any]:
    """What the path adds to the sound card's own buffering, in ms."""
    canceller = max(d["near_delay_ms"] for d in delays) if delays else 0.0
    return {
        # The relative's voice: the playout buffer's prefill and the limiter's look-ahead.
        "speaker_side_ms": PLAYOUT_PREFILL_MS + LIMITER_LOOKAHEAD_MS,
        # The resident's voice: the canceller's own delay (measured above), and up to one
        # 10 ms frame waiting to make the 20 ms packet the call sends.
        "microphone_side_ms": round(canceller + FRAME_MS, 1),
        "canceller_ms": canceller,
        "frame_ms": FRAME_MS,
    }


def run(delays_ms: tuple[int, ...] = DELAYS_MS, seed: int = 1) -> dict[str, Any]:
    clips = make_clips()
    per_delay = [measure_delay(clips, d, seed) for d in delays_ms]
    comparisons = {
        variant: [
            {
                key: value
                for key, value in measure_delay(clips, d, seed, variant).items()
                if key in ("delay_ms", "erle_db", "near_kept", "near_gain_db")
            }
            for d in delays_ms
        ]
        for variant in VARIANTS[1:]
        if variant != "speex_alone" or speex.available()
    }
    return {
        "rate": RATE,
        "frame_ms": FRAME_MS,
        "clip_s": round(clips.far.size / RATE, 2),
        "double_talk_from_s": DOUBLE_TALK_START_S,
        "convergence_s": CONVERGENCE_S,
        "echo_path": {
            "gain_db": ECHO_GAIN_DB,
            "rt60_s": RT60_S,
            "direct_to_reverb_db": DIRECT_TO_REVERB_DB,
        },
        "linear_stage": AudioChain().stats_dict()["linear_stage"],
        "double_talk": AudioChain().stats_dict()["double_talk"],
        "delays": per_delay,
        "comparisons": comparisons,
        "targets": {"erle_db": TARGET_ERLE_DB, "near_kept": TARGET_NEAR_KEPT},
        "meets_erle": all(d["erle_db"] >= TARGET_ERLE_DB for d in per_delay),
        "meets_near_kept": all(d["near_kept"] >= TARGET_NEAR_KEPT for d in per_delay),
        "cpu": path_cost(clips),
        "cpu_without_double_talk": path_cost(clips, double_talk=False)["percent_of_one_core"],
        "latency_ms": latency(per_delay),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delays", type=int, nargs="+", default=list(DELAYS_MS))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        report = run(tuple(args.delays), args.seed)
    except EspeakMissing as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
