"""Reference renderings by pedalboard for tests/pedalboard_parity.rs, and the bitwise comparison.

    parity.py render DIR    writes DIR/<case>.in.wav (float32 input) and DIR/<case>.pedalboard.npy
    parity.py compare DIR   compares DIR/<case>.longwave.wav with DIR/<case>.pedalboard.npy

Cases: pedalboard's Reverb (its defaults; room_size 0.5 as the 8D service ran it; other settings;
mono), its Limiter (threshold -2 dB on input up to +12 dBFS, and -6 dB), each at 44.1 or 48 kHz on
seeded noise. Prints one line per case; exits 1 when any output differs in any bit.
"""
import json
import sys

import numpy as np
import pedalboard
from pedalboard.io import AudioFile

# name: (rate, channels, amplitude, pedalboard plugin, longwave chain)
CASES = {
    "reverb_default_44k1": (44100, 2, 0.5, pedalboard.Reverb(),
                            [{"type": "reverb"}]),
    "reverb_8d_48k": (48000, 2, 0.5, pedalboard.Reverb(room_size=0.5),
                      [{"type": "reverb", "room_size": 0.5}]),
    "reverb_settings_44k1": (44100, 2, 0.7,
                             pedalboard.Reverb(room_size=0.9, damping=0.2, wet_level=0.5,
                                               dry_level=0.3, width=0.4),
                             [{"type": "reverb", "room_size": 0.9, "damping": 0.2,
                               "wet_level": 0.5, "dry_level": 0.3, "width": 0.4}]),
    "reverb_mono_44k1": (44100, 1, 0.5, pedalboard.Reverb(room_size=0.5),
                         [{"type": "reverb", "room_size": 0.5}]),
    "limiter_juce_44k1": (44100, 2, 4.0, pedalboard.Limiter(threshold_db=-2.0),
                          [{"type": "limiter", "mode": "juce", "threshold_db": -2}]),
    "limiter_juce_48k": (48000, 2, 1.0, pedalboard.Limiter(threshold_db=-6.0, release_ms=50.0),
                         [{"type": "limiter", "mode": "juce", "threshold_db": -6,
                           "release_ms": 50}]),
}
SECONDS = 3


def render(folder):
    chains = {}
    for seed, (name, (rate, channels, amp, plugin, chain)) in enumerate(sorted(CASES.items())):
        rng = np.random.default_rng(seed + 1)
        x = rng.uniform(-amp, amp, (channels, rate * SECONDS)).astype(np.float32)
        with AudioFile(f"{folder}/{name}.in.wav", "w", rate, channels, bit_depth=32) as f:
            f.write(x)
        with AudioFile(f"{folder}/{name}.in.wav") as f:
            assert np.array_equal(f.read(f.frames), x), "float32 WAV round trip"
        np.save(f"{folder}/{name}.pedalboard.npy", pedalboard.Pedalboard([plugin])(x, rate))
        chains[name] = chain
    print(json.dumps(chains))


def compare(folder):
    failed = False
    for name in sorted(CASES):
        want = np.load(f"{folder}/{name}.pedalboard.npy")
        with AudioFile(f"{folder}/{name}.longwave.wav") as f:
            got = f.read(f.frames)
        if got.shape != want.shape:
            print(f"{name}: shape {got.shape} vs pedalboard {want.shape}")
            failed = True
            continue
        differ = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
        if differ.size:
            first = np.unravel_index(differ[0], got.shape)
            print(f"{name}: {differ.size} of {got.size} samples differ, first at {first}: "
                  f"{got[first]!r} vs {want[first]!r}, max |diff| {np.max(np.abs(got - want)):.3e}")
            failed = True
        else:
            print(f"{name}: {got.size} samples bit-identical")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    {"render": render, "compare": compare}[sys.argv[1]](sys.argv[2])
