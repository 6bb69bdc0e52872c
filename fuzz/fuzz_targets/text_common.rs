//! Shared body of the `text` and `openmetrics` targets.

use telemetry_core::format::text::{Entry, Flavor, TextDecoder, TextEncoder};

fn same(a: &Entry<'_>, b: &Entry<'_>) -> bool {
    match (a, b) {
        (Entry::Sample(x), Entry::Sample(y)) => {
            x.name == y.name
                && x.labels.iter().eq(y.labels.iter())
                && x.value.to_bits() == y.value.to_bits()
                && x.timestamp_ms == y.timestamp_ms
                && match (&x.exemplar, &y.exemplar) {
                    (None, None) => true,
                    (Some(e), Some(f)) => {
                        e.labels.iter().eq(f.labels.iter())
                            && e.value.to_bits() == f.value.to_bits()
                            && e.timestamp_ms == f.timestamp_ms
                    }
                    _ => false,
                }
        }
        (Entry::Help { family: f1, help: h1 }, Entry::Help { family: f2, help: h2 }) => {
            f1 == f2 && h1.unescape() == h2.unescape()
        }
        (Entry::Comment(_), Entry::Comment(_)) => true,
        _ => a == b,
    }
}

pub fn check(data: &[u8], flavor: Flavor) {
    let enc = TextEncoder::new(flavor);
    for entry in TextDecoder::new(data, flavor) {
        let Ok(entry) = entry else { break };
        if let Entry::Sample(s) = &entry {
            let _ = s.to_labels();
        }
        let mut out = Vec::new();
        if enc.write_entry(&mut out, &entry).is_err() {
            continue;
        }
        if matches!(entry, Entry::Eof) || matches!(entry, Entry::Comment(_)) {
            continue;
        }
        if flavor == Flavor::OpenMetrics {
            enc.write_eof(&mut out);
        }
        let back = TextDecoder::new(&out, flavor).next();
        match back {
            Some(Ok(e)) => assert!(same(&entry, &e), "{entry:?} became {e:?} via {:?}", String::from_utf8_lossy(&out)),
            other => panic!("{entry:?} re-encoded as {:?} decodes to {other:?}", String::from_utf8_lossy(&out)),
        }
    }
}
