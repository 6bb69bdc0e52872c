//! Fingerprints: stable 64-bit hashes of label sets.

use std::fmt;

use xxhash_rust::xxh64::{Xxh64, xxh64};

/// The separator byte Prometheus puts after each label name and value when hashing.
const SEP: u8 = 0xff;

/// A stable 64-bit hash of a label set: xxHash64 (seed 0) over
/// `name₁ 0xff value₁ 0xff name₂ 0xff value₂ 0xff …` for the labels sorted by name, exactly as
/// Prometheus computes `labels.Labels.Hash()` (`model/labels/labels_common.go`,
/// `labels_stringlabels.go`). Fingerprints are persisted (WAL, blocks), so this function must
/// never change; equal label sets always have equal fingerprints, and different sets collide
/// only by chance (callers that key maps by fingerprint must compare labels on collision).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint(pub u64);

impl Fingerprint {
    /// Hashes pairs that are already sorted by name (the caller's guarantee: a [`Labels`]
    /// iterator, or parsed labels sorted in place). Allocates nothing: label sets up to 1 KiB
    /// hash from a stack buffer, larger ones stream.
    ///
    /// [`Labels`]: crate::Labels
    pub fn of_sorted_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        let mut buf = [0u8; 1024];
        let mut len = 0usize;
        let mut fits = true;
        for (n, v) in pairs.clone() {
            let need = n.len() + v.len() + 2;
            if len + need > buf.len() {
                fits = false;
                break;
            }
            buf[len..len + n.len()].copy_from_slice(n.as_bytes());
            len += n.len();
            buf[len] = SEP;
            len += 1;
            buf[len..len + v.len()].copy_from_slice(v.as_bytes());
            len += v.len();
            buf[len] = SEP;
            len += 1;
        }
        if fits {
            return Fingerprint(xxh64(&buf[..len], 0));
        }
        let mut h = Xxh64::new(0);
        for (n, v) in pairs {
            h.update(n.as_bytes());
            h.update(&[SEP]);
            h.update(v.as_bytes());
            h.update(&[SEP]);
        }
        Fingerprint(h.digest())
    }

    /// The hash as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({:016x})", self.0)
    }
}

/// Sixteen lower-case hex digits, as Prometheus prints fingerprints.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use crate::Labels;

    fn fp(pairs: &[(&str, &str)]) -> u64 {
        Labels::from_pairs(pairs.iter().copied()).unwrap().fingerprint().as_u64()
    }

    /// Expected values computed independently with the Python `xxhash` package:
    /// `xxhash.xxh64(b"".join(n + b"\xff" + v + b"\xff" for n, v in sorted(pairs)), seed=0)`.
    #[test]
    fn matches_prometheus_hash() {
        assert_eq!(fp(&[]), 0xef46db3751d8e999);
        assert_eq!(fp(&[("job", "node"), ("__name__", "up")]), 0x01585e2399cc2df6);
        assert_eq!(
            fp(&[
                ("__name__", "node_cpu_seconds_total"),
                ("cpu", "0"),
                ("instance", "127.0.0.1:19100"),
                ("job", "node"),
                ("mode", "idle"),
            ]),
            0x91a692802d7b53d3
        );
        assert_eq!(fp(&[("a", "é\"\n")]), 0xfda41a2e1ed147fe);
        // Longer than the 1 KiB stack buffer: the streaming path must agree.
        let big = "x".repeat(2000);
        assert_eq!(fp(&[("__name__", "m"), ("big", &big)]), 0x4e21b9d4af6948f0);
    }
}
