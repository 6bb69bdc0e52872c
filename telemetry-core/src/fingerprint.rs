//! Fingerprints: stable 64-bit hashes of label sets.

use std::fmt;

use smallvec::SmallVec;
use xxhash_rust::xxh64::xxh64;

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
    /// iterator, or parsed labels sorted in place). Label sets up to 512 bytes are hashed from
    /// an uninitialised stack buffer, larger ones from the heap.
    ///
    /// [`Labels`]: crate::Labels
    pub fn of_sorted_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut key: SmallVec<[u8; 512]> = SmallVec::new();
        for (n, v) in pairs {
            push_key_pair(&mut key, n, v);
        }
        Fingerprint::of_key_bytes(&key)
    }

    /// Hashes a label key already laid out as `name₁ 0xff value₁ 0xff …` (labels sorted by
    /// name): for each label its name, the byte `0xff`, its value and
    /// `0xff` again. Ingest paths that keep such a key per series
    /// use this to hash without building [`Labels`](crate::Labels).
    #[inline]
    pub fn of_key_bytes(key: &[u8]) -> Self {
        Fingerprint(xxh64(key, 0))
    }

    /// The hash as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// Appends one label to a fingerprint key: `name 0xff value 0xff`.
#[inline]
fn push_key_pair(key: &mut SmallVec<[u8; 512]>, name: &str, value: &str) {
    key.extend_from_slice(name.as_bytes());
    key.push(SEP);
    key.extend_from_slice(value.as_bytes());
    key.push(SEP);
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
