//! Audio in: Ogg/Opus (RFC 7845: `OpusHead` pre-skip, output gain and the
//! end trim from the last granule position) and RIFF WAV (PCM 8/16/24/32-bit
//! or float), decoded to 16 kHz mono f32, the rate Whisper hears. Opus is
//! decoded at 16 kHz directly (the codec's own decimation, as `opusdec
//! --rate 16000`); WAV at other rates goes through a windowed-sinc
//! resampler.
//!
//! Owns decoding only: pure functions of the bytes, no files, no model.

use std::io::Cursor;

/// Whisper's sample rate.
pub const RATE: u32 = 16_000;
/// Opus's native rate.
const OPUS_RATE: u32 = 48_000;

/// Why a file cannot be heard.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("the file is empty")]
    Empty,
    #[error("not an Ogg/Opus or WAV file")]
    Format,
    #[error("the Ogg stream holds {0}, not Opus")]
    NotOpus(String),
    #[error("the Ogg file is damaged: {0}")]
    Ogg(String),
    #[error("the Opus stream is damaged: {0}")]
    Opus(String),
    #[error("the WAV file is damaged: {0}")]
    Wav(&'static str),
    #[error("{0}-channel Opus (surround mapping) is not a voice note")]
    Surround(u8),
    #[error("the note is longer than {max_s} s")]
    TooLong { max_s: u64 },
}

/// Decodes a voice note (Ogg/Opus or WAV, told apart by their magic bytes)
/// to 16 kHz mono samples in [-1, 1], refusing more than `max_s` seconds
/// without decoding them.
pub fn decode(bytes: &[u8], max_s: u64) -> Result<Vec<f32>, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    if bytes.starts_with(b"OggS") {
        // The decoder is a port of C code; a packet it mishandles must fail
        // this note, not the daemon.
        std::panic::catch_unwind(|| decode_ogg_opus(bytes, max_s))
            .unwrap_or_else(|_| Err(AudioError::Opus("the decoder failed on a packet".into())))
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE" {
        decode_wav(bytes, max_s)
    } else {
        Err(AudioError::Format)
    }
}

/// The fields of an `OpusHead` packet Hearth uses.
struct OpusHead {
    channels: u8,
    pre_skip: u16,
    gain_q8: i16,
    family: u8,
}

fn opus_head(p: &[u8]) -> Result<OpusHead, AudioError> {
    if !p.starts_with(b"OpusHead") {
        let what = if p.starts_with(b"\x01vorbis") {
            "Vorbis".to_string()
        } else if p.starts_with(b"\x7fFLAC") {
            "FLAC".to_string()
        } else if p.starts_with(b"Speex") {
            "Speex".to_string()
        } else {
            "an unknown codec".to_string()
        };
        return Err(AudioError::NotOpus(what));
    }
    if p.len() < 19 {
        return Err(AudioError::Opus("OpusHead is too short".into()));
    }
    if p[8] >> 4 != 0 {
        return Err(AudioError::Opus(format!("OpusHead version {}", p[8])));
    }
    Ok(OpusHead {
        channels: p[9],
        pre_skip: u16::from_le_bytes([p[10], p[11]]),
        gain_q8: i16::from_le_bytes([p[16], p[17]]),
        family: p[18],
    })
}

fn decode_ogg_opus(bytes: &[u8], max_s: u64) -> Result<Vec<f32>, AudioError> {
    let mut reader = ogg::reading::PacketReader::new(Cursor::new(bytes));
    let mut next = || -> Result<Option<ogg::Packet>, AudioError> {
        reader
            .read_packet()
            .map_err(|e| AudioError::Ogg(e.to_string()))
    };
    let head = next()?.ok_or(AudioError::Ogg("no packets".into()))?;
    let serial = head.stream_serial();
    let head = opus_head(&head.data)?;
    if head.family != 0 || head.channels == 0 || head.channels > 2 {
        return Err(AudioError::Surround(head.channels));
    }
    // OpusTags (not needed).
    next()?.ok_or(AudioError::Ogg("the stream ends after its header".into()))?;
    // Always mono (the decoder downmixes a stereo stream), at 48 kHz: the
    // rate opus-decoder matches libopus at (60 dB SNR against `opusdec`,
    // 16-bit rounding); its 16 kHz output measured 14 dB from libopus's,
    // enough to change words. Decimated below, as ffmpeg does for
    // faster-whisper.
    let mut decoder = opus_decoder::OpusDecoder::new(OPUS_RATE, 1)
        .map_err(|e| AudioError::Opus(e.to_string()))?;
    // 120 ms, the longest Opus packet, at 48 kHz.
    let mut frame = vec![0f32; 5760];
    let mut pcm: Vec<f32> = Vec::new();
    let max_samples = max_s.saturating_mul(OPUS_RATE as u64) as usize;
    // Granule positions count 48 kHz samples, pre-skip included.
    let mut last_granule: Option<u64> = None;
    let mut trimmed_end = false;
    while let Some(p) = next()? {
        if p.stream_serial() != serial {
            continue;
        }
        let n = decoder
            .decode_float(&p.data, &mut frame, false)
            .map_err(|e| AudioError::Opus(e.to_string()))?;
        pcm.extend_from_slice(&frame[..n]);
        if pcm.len() > max_samples + OPUS_RATE as usize {
            return Err(AudioError::TooLong { max_s });
        }
        if p.last_in_page() {
            last_granule = Some(p.absgp_page());
        }
        if p.last_in_stream() {
            trimmed_end = true;
            break;
        }
    }
    let skip = (head.pre_skip as usize).min(pcm.len());
    // The end trim: the last page's granule position says how many samples
    // (at 48 kHz, from the start including pre-skip) are real.
    if let (true, Some(g)) = (trimmed_end, last_granule) {
        let total = g as usize;
        if total < pcm.len() {
            pcm.truncate(total.max(skip));
        }
    }
    pcm.drain(..skip);
    if head.gain_q8 != 0 {
        let gain = 10f32.powf(head.gain_q8 as f32 / (20.0 * 256.0));
        pcm.iter_mut()
            .for_each(|s| *s = (*s * gain).clamp(-1.0, 1.0));
    }
    if pcm.len() > max_samples {
        return Err(AudioError::TooLong { max_s });
    }
    Ok(to_s16(resample(&pcm, OPUS_RATE, RATE)))
}

/// Rounds to 16-bit steps, as the s16 samples faster-whisper's decoder
/// hands it.
fn to_s16(mut x: Vec<f32>) -> Vec<f32> {
    for v in x.iter_mut() {
        *v = (*v * 32768.0).round().clamp(-32768.0, 32767.0) / 32768.0;
    }
    x
}

fn decode_wav(bytes: &[u8], max_s: u64) -> Result<Vec<f32>, AudioError> {
    let mut at = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    let mut data: Option<&[u8]> = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
            as usize;
        let body_start = at + 8;
        // A truncated last chunk (a recording cut short) keeps what is there.
        let body_end = body_start.saturating_add(len).min(bytes.len());
        let body = &bytes[body_start..body_end];
        if id == b"fmt " {
            if body.len() < 16 {
                return Err(AudioError::Wav("fmt chunk too short"));
            }
            let mut tag = u16::from_le_bytes([body[0], body[1]]);
            let channels = u16::from_le_bytes([body[2], body[3]]);
            let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
            let bits = u16::from_le_bytes([body[14], body[15]]);
            if tag == 0xFFFE && body.len() >= 26 {
                // WAVE_FORMAT_EXTENSIBLE: the sub-format's first two bytes.
                tag = u16::from_le_bytes([body[24], body[25]]);
            }
            fmt = Some((tag, channels, rate, bits));
        } else if id == b"data" {
            data = Some(body);
            break;
        }
        at = body_start.saturating_add(len + (len & 1));
    }
    let (tag, channels, rate, bits) = fmt.ok_or(AudioError::Wav("no fmt chunk"))?;
    let data = data.ok_or(AudioError::Wav("no data chunk"))?;
    if channels == 0 || rate == 0 {
        return Err(AudioError::Wav("zero channels or rate"));
    }
    let width = (bits as usize).div_ceil(8);
    let sample = |b: &[u8]| -> Option<f32> {
        Some(match (tag, bits) {
            (1, 8) => (b[0] as f32 - 128.0) / 128.0,
            (1, 16) => i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0,
            (1, 24) => (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 / 8_388_608.0,
            (1, 32) => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0,
            (3, 32) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            (3, 64) => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
            _ => return None,
        })
    };
    let frame = width * channels as usize;
    let frames = data.len() / frame;
    if (frames as u64) > max_s.saturating_mul(rate as u64) {
        return Err(AudioError::TooLong { max_s });
    }
    let mut mono = Vec::with_capacity(frames);
    for f in data.chunks_exact(frame) {
        let mut sum = 0f32;
        for c in f.chunks_exact(width) {
            sum += sample(c).ok_or(AudioError::Wav("unsupported sample format"))?;
        }
        mono.push(sum / channels as f32);
    }
    Ok(if rate == RATE {
        mono
    } else {
        resample(&mono, rate, RATE)
    })
}

/// Band-limited resampling by a Kaiser-windowed sinc (β = 9, 16 output
/// samples each side, cut-off at 0.97 of the lower Nyquist rate: the shape
/// of ffmpeg's default `swr` filter, which decodes for faster-whisper).
pub fn resample(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || x.is_empty() {
        return x.to_vec();
    }
    const HALF_TAPS: f64 = 16.0;
    const BETA: f64 = 9.0;
    let ratio = to as f64 / from as f64;
    let cutoff = 0.97 * ratio.min(1.0);
    let half = HALF_TAPS / ratio.min(1.0);
    let i0_beta = bessel_i0(BETA);
    // Output i sits at input position i·from/to: its fractional part takes
    // one of to/gcd values, so each phase's taps are computed once.
    let g = gcd(from as u64, to as u64);
    let (num, den) = (from as u64 / g, to as u64 / g);
    let reach = half.ceil() as i64;
    let mut phases: Vec<Option<Vec<f64>>> = vec![None; den as usize];
    let n_out = ((x.len() as f64) * ratio).round() as usize;
    let mut out = Vec::with_capacity(n_out);
    for i in 0..n_out as u64 {
        let base = (i * num / den) as i64;
        let phase = (i * num % den) as usize;
        let taps = phases[phase].get_or_insert_with(|| {
            let frac = phase as f64 / den as f64;
            (-reach..=reach + 1)
                .map(|k| {
                    let d = k as f64 - frac;
                    if d.abs() > half {
                        return 0.0;
                    }
                    let arg = d * cutoff;
                    let sinc = if arg.abs() < 1e-12 {
                        1.0
                    } else {
                        (std::f64::consts::PI * arg).sin() / (std::f64::consts::PI * arg)
                    };
                    let r = d / half;
                    let w = bessel_i0(BETA * (1.0 - r * r).max(0.0).sqrt()) / i0_beta;
                    sinc * w * cutoff
                })
                .collect()
        });
        let mut acc = 0f64;
        for (k, w) in (-reach..=reach + 1).zip(taps.iter()) {
            let j = base + k;
            if j >= 0 && (j as usize) < x.len() {
                acc += x[j as usize] as f64 * w;
            }
        }
        out.push(acc as f32);
    }
    out
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The modified Bessel function I₀ (its power series), for the Kaiser window.
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term) = (1.0, 1.0);
    let q = x * x / 4.0;
    for k in 1..50 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut b = b"RIFF".to_vec();
        b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&rate.to_le_bytes());
        b.extend_from_slice(&(rate * 2 * channels as u32).to_le_bytes());
        b.extend_from_slice(&(2 * channels).to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&data);
        b
    }

    #[test]
    fn wav_is_read_downmixed_and_resampled() {
        let pcm = decode(&wav(16_000, 2, &[16384, -16384, 8192, 8192]), 600).unwrap();
        assert_eq!(pcm, vec![0.0, 0.25]);
        let tone: Vec<i16> = (0..48_000)
            .map(|i| {
                ((i as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin() * 10_000.0) as i16
            })
            .collect();
        let pcm = decode(&wav(48_000, 1, &tone), 600).unwrap();
        assert_eq!(pcm.len(), 16_000);
        // The 440 Hz tone keeps its amplitude (≈ 10000/32768) through the filter.
        let peak = pcm[1000..15000].iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!((peak - 0.305).abs() < 0.01, "{peak}");
    }

    #[test]
    fn other_files_are_clear_errors() {
        assert!(matches!(decode(b"", 600), Err(AudioError::Empty)));
        assert!(matches!(
            decode(b"hello world", 600),
            Err(AudioError::Format)
        ));
        assert!(matches!(
            decode(&wav(16_000, 1, &vec![0; 16_000 * 3]), 2),
            Err(AudioError::TooLong { max_s: 2 })
        ));
        let mut cut = wav(16_000, 1, &[0; 100]);
        cut.truncate(30);
        assert!(decode(&cut, 600).is_err());
        assert!(decode(b"OggS\0\0\0", 600).is_err());
    }
}
