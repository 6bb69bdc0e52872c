//! Chunks of [`Aggr::Sketch`](super::Aggr::Sketch): one DDSketch per rollup bucket.
//!
//! # Layout
//!
//! ```text
//! version   u8 = 1
//! alpha     f64, little-endian      relative accuracy of every sketch in the chunk
//! len       uvarint                 length of the next field
//! index     telemetry-compress store chunk: the bucket ends (ms), and as values the
//!           encoded length of each sketch
//! sketches  telemetry-agg CompactDdSketch encodings, one per bucket, back to back
//! ```
//!
//! Alpha is kept per chunk (8 bytes for up to 2,048 buckets) rather than per block so that
//! a block's chunks stand alone. Decoding checks that every sketch uses exactly its recorded
//! length and that nothing follows the last one.

use telemetry_agg::CompactDdSketch;
use telemetry_compress::{StoreOptions, decode_store_chunk, encode_store_chunk_with};

use crate::block::chunks::get_uvarint;
use crate::record::put_uvarint;

/// The format version byte of a sketch chunk.
const VERSION: u8 = 1;

/// Appends the sketch chunk for `sketches` at bucket ends `ts` (strictly increasing, same
/// length, one alpha) to `out`.
pub(crate) fn encode_sketch_chunk(ts: &[i64], sketches: &[CompactDdSketch], out: &mut Vec<u8>) -> Result<(), String> {
    let Some(first) = sketches.first() else { return Err("no sketches".into()) };
    if ts.len() != sketches.len() {
        return Err(format!("{} bucket ends but {} sketches", ts.len(), sketches.len()));
    }
    let alpha = first.alpha();
    if let Some(i) = sketches.iter().position(|s| s.alpha().to_bits() != alpha.to_bits()) {
        return Err(format!("sketch {i} has alpha {} where the first has {alpha}", sketches[i].alpha()));
    }
    let mut body = Vec::new();
    let mut lens = Vec::with_capacity(sketches.len());
    for s in sketches {
        let at = body.len();
        s.encode(&mut body);
        lens.push((body.len() - at) as f64);
    }
    let mut index = Vec::new();
    encode_store_chunk_with(ts, &lens, &StoreOptions::default(), &mut index).map_err(|e| e.to_string())?;
    out.push(VERSION);
    out.extend_from_slice(&alpha.to_le_bytes());
    put_uvarint(out, index.len() as u64);
    out.extend_from_slice(&index);
    out.extend_from_slice(&body);
    Ok(())
}

/// The index of a sketch chunk without decoding its sketches: appends to `out`, per bucket,
/// its end, the chunk's alpha and the bytes of its encoded sketch (a slice of `bytes`); the
/// error names the byte offset in the chunk and what is wrong. The sketches themselves are
/// checked when they are decoded.
pub(crate) fn sketch_chunk_entries<'a>(bytes: &'a [u8], out: &mut Vec<(i64, f64, &'a [u8])>) -> Result<(), String> {
    let Some((&version, rest)) = bytes.split_first() else { return Err("empty sketch chunk".into()) };
    if version != VERSION {
        return Err(format!("sketch chunk version {version} at offset 0 (expected {VERSION})"));
    }
    let alpha: [u8; 8] = rest.get(..8).and_then(|b| b.try_into().ok()).ok_or("sketch chunk ends in its alpha")?;
    let alpha = f64::from_le_bytes(alpha);
    let mut pos = 9;
    let len = get_uvarint(bytes, &mut pos).ok_or(format!("bad index length at offset {pos}"))?;
    let index_at = pos;
    let index = usize::try_from(len)
        .ok()
        .and_then(|l| bytes.get(pos..pos.checked_add(l)?))
        .ok_or(format!("index length {len} at offset {index_at} runs past the chunk"))?;
    pos += index.len();
    let (mut ts, mut lens) = (Vec::new(), Vec::new());
    decode_store_chunk(index, &mut ts, &mut lens).map_err(|e| format!("sketch index at offset {index_at}: {e}"))?;
    let start = out.len();
    for (t, l) in ts.into_iter().zip(lens) {
        let at = pos;
        let body = (l >= 1.0 && l.fract() == 0.0 && l <= (bytes.len() - pos) as f64)
            .then(|| &bytes[pos..pos + l as usize])
            .ok_or_else(|| format!("sketch length {l} at offset {at} runs past the chunk"));
        match body {
            Ok(b) => {
                out.push((t, alpha, b));
                pos += b.len();
            }
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
    if pos != bytes.len() {
        out.truncate(start);
        return Err(format!("{} bytes after the last sketch at offset {pos}", bytes.len() - pos));
    }
    Ok(())
}

/// Decodes a sketch chunk, appending its bucket ends to `ts` and its sketches to `out`; the
/// error names the byte offset in the chunk and what is wrong (and leaves `ts` and `out` as
/// they were).
pub(crate) fn decode_sketch_chunk(
    bytes: &[u8],
    ts: &mut Vec<i64>,
    out: &mut Vec<CompactDdSketch>,
) -> Result<(), String> {
    let mut entries = Vec::new();
    sketch_chunk_entries(bytes, &mut entries)?;
    let (start_ts, start) = (ts.len(), out.len());
    for (t, alpha, b) in entries {
        // ok: `b` is a subslice of `bytes`, so the subtraction cannot underflow
        let at = b.as_ptr() as usize - bytes.as_ptr() as usize;
        let bad = match CompactDdSketch::decode(alpha, b) {
            Ok((s, used)) if used == b.len() => {
                ts.push(t);
                out.push(s);
                continue;
            }
            Ok((_, used)) => format!("sketch at offset {at} takes {used} bytes, its index says {}", b.len()),
            Err(e) => format!("sketch at offset {}: {e}", at + e.offset()),
        };
        ts.truncate(start_ts);
        out.truncate(start);
        return Err(bad);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch(alpha: f64, vs: &[f64]) -> CompactDdSketch {
        let mut s = CompactDdSketch::new(alpha).unwrap();
        for &v in vs {
            s.add(v);
        }
        s
    }

    #[test]
    fn round_trip_and_damage() {
        let ts: Vec<i64> = (1..=50).map(|i| i * 60_000).collect();
        let sk: Vec<CompactDdSketch> =
            (0..50).map(|i| sketch(0.01, &(0..i).map(|j| (j * 7 % 13) as f64 - 3.0).collect::<Vec<_>>())).collect();
        let mut b = Vec::new();
        encode_sketch_chunk(&ts, &sk, &mut b).unwrap();
        let (mut t2, mut s2) = (vec![7], Vec::new());
        decode_sketch_chunk(&b, &mut t2, &mut s2).unwrap();
        assert_eq!(&t2[1..], &ts[..]);
        assert_eq!(s2, sk);
        // The index alone: the same bucket ends, and each slice decodes to its sketch.
        let mut entries = Vec::new();
        sketch_chunk_entries(&b, &mut entries).unwrap();
        assert_eq!(entries.iter().map(|e| e.0).collect::<Vec<_>>(), ts);
        for ((_, alpha, bytes), s) in entries.iter().zip(&sk) {
            assert_eq!(CompactDdSketch::decode(*alpha, bytes).unwrap(), (s.clone(), bytes.len()));
        }
        // Every truncation and every flipped byte is an error or a clean decode; an error
        // leaves the outputs as they were.
        for cut in 0..b.len() {
            let (mut t3, mut s3) = (vec![7], vec![sk[3].clone()]);
            assert!(decode_sketch_chunk(&b[..cut], &mut t3, &mut s3).is_err(), "cut at {cut}");
            assert_eq!((t3.len(), s3.len()), (1, 1));
            let mut entries = vec![(0, 0.0, &b[..0])];
            assert!(sketch_chunk_entries(&b[..cut], &mut entries).is_err(), "cut at {cut}");
            assert_eq!(entries.len(), 1);
        }
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x5a;
            let (mut t3, mut s3) = (Vec::new(), Vec::new());
            if decode_sketch_chunk(&bad, &mut t3, &mut s3).is_err() {
                assert!(t3.is_empty() && s3.is_empty());
            }
        }
    }

    #[test]
    fn refuses_mixed_alphas_and_lengths() {
        let a = sketch(0.01, &[1.0]);
        let b = sketch(0.02, &[1.0]);
        assert!(encode_sketch_chunk(&[1, 2], &[a.clone(), b], &mut Vec::new()).is_err());
        assert!(encode_sketch_chunk(&[1, 2], std::slice::from_ref(&a), &mut Vec::new()).is_err());
        assert!(encode_sketch_chunk(&[], &[], &mut Vec::new()).is_err());
    }
}
