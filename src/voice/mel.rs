//! Whisper's log-mel features, computed as faster-whisper 1.2 computes them
//! (`FeatureExtractor.__call__`): 160 zero samples appended, a centred STFT
//! (reflect padding of 200, periodic Hann window of 400, hop 160), the
//! power spectrum without its last frame, 80 Slaney-normalised mel filters
//! built like librosa's, `log10(max(x, 1e-10))`, floored at the whole
//! note's maximum − 8, then `(x + 4) / 4`.
//!
//! Owns the feature maths; pure functions of the samples.

use std::sync::Arc;

use rustfft::{Fft, FftPlanner, num_complex::Complex32};

pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
pub const N_MELS: usize = 80;
/// Frames in one 30 s window (the encoder's input length).
pub const WINDOW_FRAMES: usize = 3000;
const BINS: usize = N_FFT / 2 + 1;

/// Log-mel features: `N_MELS` rows of `frames` values (mel-major, as numpy
/// holds them).
pub struct Mel {
    pub frames: usize,
    pub data: Vec<f32>,
}

impl Mel {
    /// The frames `[start, start + len)` as one encoder window: mel-major,
    /// `WINDOW_FRAMES` wide, zero-padded past `len` (faster-whisper's
    /// `pad_or_trim` of the features).
    pub fn window(&self, start: usize, len: usize) -> Vec<f32> {
        let mut out = vec![0f32; N_MELS * WINDOW_FRAMES];
        let len = len
            .min(WINDOW_FRAMES)
            .min(self.frames.saturating_sub(start));
        for m in 0..N_MELS {
            let row = &self.data[m * self.frames..(m + 1) * self.frames];
            out[m * WINDOW_FRAMES..m * WINDOW_FRAMES + len]
                .copy_from_slice(&row[start..start + len]);
        }
        out
    }

    /// Frames that hold the note (faster-whisper's `content_frames`: one
    /// fewer than computed).
    pub fn content_frames(&self) -> usize {
        self.frames.saturating_sub(1)
    }
}

/// Slaney-style mel filters (`librosa.filters.mel(htk=False, norm="slaney")`
/// as faster-whisper writes it out), `[N_MELS, BINS]`, computed in f64 and
/// stored as f32 like numpy's `astype("float32")`.
pub fn filters() -> Vec<f32> {
    let sr = 16_000f64;
    let fftfreqs: Vec<f64> = (0..BINS).map(|k| k as f64 * sr / N_FFT as f64).collect();
    let (min_mel, max_mel) = (0.0f64, 45.245_640_471_924_965f64);
    let n = N_MELS + 2;
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    let freqs: Vec<f64> = (0..n)
        .map(|i| {
            // np.linspace: start + i * step.
            let m = min_mel + i as f64 * ((max_mel - min_mel) / (n - 1) as f64);
            if m >= min_log_mel {
                min_log_hz * (logstep * (m - min_log_mel)).exp()
            } else {
                f_sp * m
            }
        })
        .collect();
    let mut w = vec![0f32; N_MELS * BINS];
    for m in 0..N_MELS {
        let enorm = 2.0 / (freqs[m + 2] - freqs[m]);
        for (k, &f) in fftfreqs.iter().enumerate() {
            let lower = -(freqs[m] - f) / (freqs[m + 1] - freqs[m]);
            let upper = (freqs[m + 2] - f) / (freqs[m + 2] - freqs[m + 1]);
            let v = lower.min(upper).max(0.0);
            w[m * BINS + k] = (v * enorm) as f32;
        }
    }
    w
}

/// numpy's `reflect` padding index for position `i` of a signal of `n`.
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let mut j = i.rem_euclid(period);
    if j >= n as isize {
        j = period - j;
    }
    j as usize
}

/// The log-mel features of `samples` (16 kHz mono).
pub fn log_mel(samples: &[f32]) -> Mel {
    let mut x = samples.to_vec();
    x.extend(std::iter::repeat_n(0.0, HOP));
    let n = x.len();
    let pad = N_FFT / 2;
    let padded: Vec<f32> = (0..n + 2 * pad)
        .map(|i| x[reflect(i as isize - pad as isize, n)])
        .collect();
    // One frame fewer than the STFT makes (`stft[..., :-1]`).
    let frames = (padded.len() - N_FFT) / HOP;
    let window: Vec<f32> = (0..N_FFT)
        .map(|i| (0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / N_FFT as f64).cos()) as f32)
        .collect();
    let fft: Arc<dyn Fft<f32>> = FftPlanner::new().plan_fft_forward(N_FFT);
    let filters = filters();
    let mut mel = vec![0f32; N_MELS * frames];
    let mut buf = vec![Complex32::new(0.0, 0.0); N_FFT];
    let mut scratch = vec![Complex32::new(0.0, 0.0); fft.get_inplace_scratch_len()];
    let mut power = [0f32; BINS];
    for t in 0..frames {
        let frame = &padded[t * HOP..t * HOP + N_FFT];
        for ((b, &s), &w) in buf.iter_mut().zip(frame).zip(&window) {
            *b = Complex32::new(s * w, 0.0);
        }
        fft.process_with_scratch(&mut buf, &mut scratch);
        for (p, c) in power.iter_mut().zip(&buf[..BINS]) {
            // |c|² of the complex64 value, as np.abs(...) ** 2.
            let a = c.re.hypot(c.im);
            *p = a * a;
        }
        for m in 0..N_MELS {
            let f = &filters[m * BINS..(m + 1) * BINS];
            let mut acc = 0f32;
            for (w, p) in f.iter().zip(&power) {
                acc += w * p;
            }
            mel[m * frames + t] = acc;
        }
    }
    let mut max = f32::NEG_INFINITY;
    for v in mel.iter_mut() {
        *v = v.max(1e-10).log10();
        max = max.max(*v);
    }
    let floor = max - 8.0;
    for v in mel.iter_mut() {
        *v = (v.max(floor) + 4.0) / 4.0;
    }
    Mel { frames, data: mel }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_numpy() {
        // np.pad([0,1,2,3], 5, mode="reflect") = [1 2 3 2 1 | 0 1 2 3 | 2 1 0 1 2]
        let got: Vec<usize> = (-5..9).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, vec![1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]);
    }

    #[test]
    fn frames_and_filters_have_faster_whispers_shapes() {
        // 1 s of audio: (16000 + 160) / 160 = 101 frames.
        let m = log_mel(&vec![0.0; 16_000]);
        assert_eq!(m.frames, 101);
        assert_eq!(m.content_frames(), 100);
        // Silence is the floor everywhere: log10(1e-10) = -10 → (-10 + 4) / 4.
        assert!(m.data.iter().all(|&v| (v + 1.5).abs() < 1e-6));
        let f = filters();
        // Each filter is a triangle: non-negative, some weight.
        for m in 0..N_MELS {
            let row = &f[m * BINS..(m + 1) * BINS];
            assert!(
                row.iter().all(|&v| v >= 0.0) && row.iter().any(|&v| v > 0.0),
                "{m}"
            );
        }
        assert_eq!(m.window(0, 100).len(), N_MELS * WINDOW_FRAMES);
    }
}
