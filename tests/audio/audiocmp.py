#!/usr/bin/python3
"""audiocmp.py - does a recording sound like its source? The listening tests'
analyser (issue 18 item 3, docs/phone-tests.md).

Compares the speech envelope of a reference WAV (what went into a microphone)
with a degraded one (what came out of a speaker): both are cut into short
frames (10 ms windows, hopped every 1 ms), each frame's RMS level in dB
(floored FLOOR_DB below the signal's loudest frame, so the noise floor of a
codec or a silence of digital zeros look alike), and the degraded envelope is
slid against the reference over a bounded range of lags. The score is the
Pearson correlation at the best lag; the lag is the delay. Pearson ignores
level (gain control, a codec's level change) and a dB envelope weighs the
quiet consonants as much as the loud vowels, so the score drops when syllables
go missing or smear, which is what loss does to speech.

Why envelopes and not waveforms: Opus (SILK at speech bitrates, and PLC
everywhere) keeps how speech sounds, not its waveform; a waveform correlation
of a good call can be near 0. Resolution of the delay: 1 ms (the hop).

Library use: `compare(ref, deg, rate_ref, rate_deg, ...)` on numpy arrays, or
`compare_files(REF, DEG)`. CLI: `audiocmp.py REF.wav DEG.wav [--min-lag-ms A]
[--max-lag-ms B]` prints one JSON line {corr, delay_ms, ...}.

Needs python3-numpy (scripts/deps.sh test)."""
import argparse
import json
import sys
import wave

import numpy as np

WIN_MS = 10      # RMS window: a syllable is 100-300 ms, a codec frame 10-20 ms
HOP_MS = 1       # the delay's resolution
FLOOR_DB = 45.0  # below the loudest frame: espeak's digital silence and a
#                  codec's noise floor both sit here
MAX_SECONDS = 120  # a bound on what a test may hand us (memory, time)


def read_wav(path):
    """(samples as float64 mono in [-1, 1], rate). 16-bit PCM (what paplay,
    parecord, sox, espeak-ng and the phone's --record write), 8/24/32-bit
    too; channels are averaged."""
    with wave.open(path, "rb") as w:
        ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
        if rate < 8000 or rate > 192000 or ch < 1 or ch > 8:
            raise ValueError("%s: unusable WAV (%d Hz, %d channels)" % (path, rate, ch))
        n = min(n, MAX_SECONDS * rate)
        raw = w.readframes(n)
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float64) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8)
        b = b[: len(b) // 3 * 3].reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v & 0x800000, v - (1 << 24), v)
        x = v.astype(np.float64) / float(1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float64) / float(1 << 31)
    else:
        raise ValueError("%s: %d-byte samples" % (path, width))
    x = x[: len(x) // ch * ch].reshape(-1, ch).mean(axis=1)
    return x, rate


def write_wav(path, x, rate):
    """16-bit mono PCM; x in [-1, 1] (clipped)."""
    v = np.clip(np.round(np.asarray(x, np.float64) * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(v.tobytes())


def envelope(x, rate, floor_db=FLOOR_DB):
    """dB RMS of WIN_MS windows every HOP_MS, floored floor_db below the
    loudest window. One value per hop; hop i covers samples [i*hop, i*hop+win)."""
    hop = rate * HOP_MS // 1000
    win = rate * WIN_MS // 1000
    if hop < 1 or len(x) < win:
        return np.zeros(0)
    c = np.concatenate(([0.0], np.cumsum(np.asarray(x, np.float64) ** 2)))
    starts = np.arange(0, len(x) - win + 1, hop)
    ms = (c[starts + win] - c[starts]) / win
    db = 10.0 * np.log10(ms + 1e-20)
    top = db.max() if len(db) else 0.0
    return np.maximum(db, top - floor_db)


def _pearson_at_lags(ref, deg, lags):
    """Pearson correlation of ref with deg[lag:lag+len(ref)] for each lag
    (deg padded with its own floor where it runs out; a negative lag pads in
    front: the degraded signal began early, which only a broken clock does)."""
    n = len(ref)
    lo, hi = min(lags), max(lags)
    pad_front = max(0, -lo)
    pad_back = max(0, hi + n - len(deg))
    floor = deg.min() if len(deg) else 0.0
    d = np.concatenate((np.full(pad_front, floor), deg, np.full(pad_back, floor)))
    r = ref - ref.mean()
    rn = np.sqrt((r * r).sum())
    # running sums of deg and deg^2 give each window's mean and norm in O(1)
    c1 = np.concatenate(([0.0], np.cumsum(d)))
    c2 = np.concatenate(([0.0], np.cumsum(d * d)))
    out = np.empty(len(lags))
    for i, lag in enumerate(lags):
        s = lag + pad_front
        w = d[s: s + n]
        sm = c1[s + n] - c1[s]
        var = (c2[s + n] - c2[s]) - sm * sm / n
        den = rn * np.sqrt(max(var, 0.0))
        out[i] = float(np.dot(r, w)) / den if den > 1e-9 else 0.0
    return out


def compare(ref, deg, rate_ref, rate_deg, min_lag_ms=-50, max_lag_ms=1000, floor_db=FLOOR_DB):
    """Score deg against ref. Returns a dict: corr (Pearson of the dB
    envelopes at the best lag, 1 = same syllables at the same levels),
    delay_ms (deg later than ref by this much; the lag of corr),
    second (the best corr at least 100 ms away from the best lag: a
    periodic or silent signal scores high everywhere, speech does not),
    ref_s / deg_s (lengths). The envelopes are compared over the reference's
    whole length, so a recording that stops early costs correlation."""
    e_ref = envelope(ref, rate_ref, floor_db)
    e_deg = envelope(deg, rate_deg, floor_db)
    if len(e_ref) < 100 or len(e_deg) < 100:
        raise ValueError("signals too short to compare (%d / %d hops)" % (len(e_ref), len(e_deg)))
    if e_ref.max() - e_ref.min() < 1e-6:
        raise ValueError("the reference is silent")
    lags = list(range(int(min_lag_ms // HOP_MS), int(max_lag_ms // HOP_MS) + 1))
    cs = _pearson_at_lags(e_ref, e_deg, lags)
    i = int(np.argmax(cs))
    far = [c for lag, c in zip(lags, cs) if abs(lag - lags[i]) * HOP_MS >= 100]
    return {
        "corr": round(float(cs[i]), 4),
        "delay_ms": lags[i] * HOP_MS,
        "second": round(float(max(far)), 4) if far else None,
        "ref_s": round(len(ref) / rate_ref, 3),
        "deg_s": round(len(deg) / rate_deg, 3),
        "deg_rms_db": round(float(10 * np.log10(np.mean(np.asarray(deg) ** 2) + 1e-20)), 1),
    }


def segments(ref, deg, rate_ref, rate_deg, delay_ms, seg_ms=2000, slack_ms=150,
             floor_db=FLOOR_DB):
    """Diagnosis, not a score: the reference cut into seg_ms pieces, each
    aligned on its own within slack_ms of delay_ms. Returns [(start ms,
    corr, delay ms)]. A recording whose delay drifts (a jitter buffer that
    skips or stretches) scores well here and worse in compare(); one that
    lost syllables scores badly in both."""
    e_ref = envelope(ref, rate_ref, floor_db)
    e_deg = envelope(deg, rate_deg, floor_db)
    n = seg_ms // HOP_MS
    out = []
    for s in range(0, len(e_ref) - n + 1, n):
        seg = e_ref[s: s + n]
        if seg.max() - seg.min() < 1e-6:
            continue  # silence: nothing to align
        lags = list(range(s + (delay_ms - slack_ms) // HOP_MS,
                          s + (delay_ms + slack_ms) // HOP_MS + 1))
        cs = _pearson_at_lags(seg, e_deg, lags)
        i = int(np.argmax(cs))
        out.append((s * HOP_MS, round(float(cs[i]), 3), (lags[i] - s) * HOP_MS))
    return out


def compare_files(ref_path, deg_path, **kw):
    ref, rr = read_wav(ref_path)
    deg, rd = read_wav(deg_path)
    return compare(ref, deg, rr, rd, **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ref")
    ap.add_argument("deg")
    ap.add_argument("--min-lag-ms", type=int, default=-50)
    ap.add_argument("--max-lag-ms", type=int, default=1000)
    ap.add_argument("--floor-db", type=float, default=FLOOR_DB)
    a = ap.parse_args()
    try:
        r = compare_files(a.ref, a.deg, min_lag_ms=a.min_lag_ms, max_lag_ms=a.max_lag_ms,
                          floor_db=a.floor_db)
    except (OSError, ValueError, EOFError, wave.Error) as e:
        print("audiocmp: %s" % e, file=sys.stderr)
        return 2
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
