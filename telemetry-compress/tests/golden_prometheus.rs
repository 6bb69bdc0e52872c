//! Golden tests against chunk segment files written by Prometheus 2.42
//! (`../shared/data/prometheus-chunks`, layout in its README).

use telemetry_compress::{XorChunk, decode_xor_chunk};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/prometheus-chunks");

/// Splits a chunk segment file into XOR chunk payloads, checking magic, version and CRC32C.
fn chunks_of(file: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(&file[..4], &[0x85, 0xBD, 0x40, 0xDD], "magic");
    assert_eq!(file[4], 1, "version");
    let mut pos = 8;
    let mut out = Vec::new();
    while pos < file.len() {
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let b = file[pos];
            pos += 1;
            len |= ((b & 0x7f) as usize) << shift;
            shift += 7;
            if b < 0x80 {
                break;
            }
        }
        let enc = file[pos];
        assert_eq!(enc, 1, "XOR encoding byte");
        let data = &file[pos + 1..pos + 1 + len];
        let crc = u32::from_be_bytes(file[pos + 1 + len..pos + 5 + len].try_into().unwrap());
        assert_eq!(crc32c::crc32c(&file[pos..pos + 1 + len]), crc, "CRC32C of chunk at byte {pos}");
        out.push(data.to_vec());
        pos += 1 + len + 4;
    }
    out
}

const GO_NAN: u64 = 0x7ff8_0000_0000_0001;
const CSV_NAN: u64 = 0x7ff8_0000_0000_0000;

fn samples_of(csv: &str) -> Vec<(i64, u64)> {
    csv.lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split(',');
            let t: i64 = f.next().unwrap().parse().unwrap();
            let _decimal = f.next().unwrap();
            let bits = u64::from_str_radix(f.next().unwrap(), 16).unwrap();
            (t, bits)
        })
        .collect()
}

#[test]
#[ignore = "needs ../shared/data"]
fn prometheus_chunks_decode_and_reencode_bit_for_bit() {
    let mut files = 0;
    let mut total_chunks = 0;
    let mut total_samples = 0;
    let mut nan_payload_diffs = 0;
    for i in 0..13 {
        let file = std::fs::read(format!("{DIR}/{i:02}.chunks")).unwrap();
        let csv = std::fs::read_to_string(format!("{DIR}/{i:02}.samples.csv")).unwrap();
        let want = samples_of(&csv);
        let chunks = chunks_of(&file);
        assert_eq!(chunks.len(), 31, "file {i:02}");
        let mut got = Vec::new();
        for (ci, data) in chunks.iter().enumerate() {
            // Bulk decoder.
            let (mut ts, mut vs) = (Vec::new(), Vec::new());
            let n = decode_xor_chunk(data, &mut ts, &mut vs).unwrap();
            // Validating constructor and iterator agree with it.
            let chunk = XorChunk::from_bytes(data).unwrap_or_else(|e| panic!("file {i:02} chunk {ci}: {e}"));
            assert_eq!(chunk.num_samples(), n);
            let it: Vec<_> = chunk.iter().map(|s| (s.timestamp_ms, s.value.to_bits())).collect();
            assert_eq!(it.len(), n);
            for k in 0..n {
                assert_eq!(it[k], (ts[k], vs[k].to_bits()));
            }
            assert_eq!(chunk.min_time(), ts.first().copied());
            assert_eq!(chunk.max_time(), ts.last().copied());
            // Re-encoding gives the identical bytes.
            let mut re = XorChunk::new();
            for (&t, &v) in ts.iter().zip(&vs) {
                re.append(t, v).unwrap();
            }
            assert_eq!(re.bytes(), &data[..], "file {i:02} chunk {ci}: re-encoded bytes differ");
            got.extend(ts.iter().zip(&vs).map(|(&t, v)| (t, v.to_bits())));
            total_chunks += 1;
        }
        assert_eq!(got.len(), want.len(), "file {i:02} sample count");
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            // The CSV writes NaN as 0x7ff8000000000000, but Prometheus parsed "NaN" with Go's
            // math.NaN(), whose bits are 0x7ff8000000000001, and that is what the chunk holds.
            if g.0 == w.0 && g.1 == GO_NAN && w.1 == CSV_NAN {
                nan_payload_diffs += 1;
                continue;
            }
            assert_eq!(g, w, "file {i:02} sample {k}: got {g:?}, want {w:?}");
        }
        total_samples += got.len();
        files += 1;
    }
    assert_eq!((files, total_chunks), (13, 13 * 31));
    assert!(total_samples > 13 * 3600);
    eprintln!("{total_samples} samples in {total_chunks} chunks; {nan_payload_diffs} NaNs stored as Go's math.NaN()");
}
