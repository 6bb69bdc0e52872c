//! Labels: the identity of a series.
//!
//! A [`Labels`] value is a set of `(name, value)` pairs sorted by name with unique names, as
//! Prometheus keeps them (`model/labels` in the Prometheus source). The metric name is the value
//! of the reserved label `__name__`. A label whose value is empty is the same as an absent
//! label (Prometheus data model, "Metric names and labels"), so builders drop empty values.
//!
//! Strings are reference counted ([`Arc<str>`]) and the pairs sit inline for up to
//! [`INLINE_LABELS`] labels, so cloning a label set costs a small copy and a few reference-count
//! increments, and never allocates for the common case.

use std::fmt;
use std::sync::Arc;

use smallvec::SmallVec;
use thiserror::Error;

use crate::fingerprint::Fingerprint;

/// The reserved label name that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// How many labels a [`Labels`] value stores without a heap allocation.
pub const INLINE_LABELS: usize = 6;

/// One `(name, value)` pair.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// The label name, `[a-zA-Z_][a-zA-Z0-9_]*` (or a metric name for `__name__`'s value).
    pub name: Arc<str>,
    /// The label value: any UTF-8 string, never empty inside a [`Labels`].
    pub value: Arc<str>,
}

impl Label {
    /// Makes a label from a name and a value, without validation.
    pub fn new(name: impl Into<Arc<str>>, value: impl Into<Arc<str>>) -> Self {
        Label { name: name.into(), value: value.into() }
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=\"{}\"", self.name, Escaped(&self.value))
    }
}

/// Bounds that label validation enforces. Prometheus leaves these unlimited by default
/// (`label_limit`, `label_name_length_limit`, `label_value_length_limit` in its scrape config);
/// the defaults here are generous but finite so that hostile input cannot grow memory unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelLimits {
    /// Largest label name in bytes (default 1,024).
    pub max_name_len: usize,
    /// Largest label value in bytes (default 16,384).
    pub max_value_len: usize,
    /// Most labels in one set, `__name__` included (default 128).
    pub max_labels: usize,
}

impl Default for LabelLimits {
    fn default() -> Self {
        LabelLimits { max_name_len: 1024, max_value_len: 16 * 1024, max_labels: 128 }
    }
}

/// Why a label set was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LabelError {
    /// A label name is empty or has a character outside `[a-zA-Z0-9_]` (or starts with a digit).
    #[error("invalid label name {name:?}: byte {offset} is not allowed")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Byte offset of the first bad byte in the name.
        offset: usize,
    },
    /// The metric name (`__name__`) is empty or has a character outside `[a-zA-Z0-9_:]`.
    #[error("invalid metric name {name:?}: byte {offset} is not allowed")]
    InvalidMetricName {
        /// The offending metric name.
        name: String,
        /// Byte offset of the first bad byte.
        offset: usize,
    },
    /// The same label name appears twice.
    #[error("duplicate label name {name:?}")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A label name is longer than [`LabelLimits::max_name_len`].
    #[error("label name {name:?} is {len} bytes long, the limit is {max}")]
    NameTooLong {
        /// The name (cut to the limit).
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A label value is longer than [`LabelLimits::max_value_len`].
    #[error("value of label {name:?} is {len} bytes long, the limit is {max}")]
    ValueTooLong {
        /// The label whose value is too long.
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// More labels than [`LabelLimits::max_labels`].
    #[error("{count} labels, the limit is {max}")]
    TooManyLabels {
        /// How many labels were given.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// Checks a label name against `[a-zA-Z_][a-zA-Z0-9_]*`; returns the offset of the first bad
/// byte, or `None` when the name is valid. An empty name is bad at offset 0.
pub fn invalid_label_name_offset(name: &str) -> Option<usize> {
    let b = name.as_bytes();
    if b.is_empty() {
        return Some(0);
    }
    for (i, &c) in b.iter().enumerate() {
        let ok = c == b'_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            return Some(i);
        }
    }
    None
}

/// Checks a metric name against `[a-zA-Z_:][a-zA-Z0-9_:]*`; returns the offset of the first bad
/// byte, or `None` when the name is valid. An empty name is bad at offset 0.
pub fn invalid_metric_name_offset(name: &str) -> Option<usize> {
    let b = name.as_bytes();
    if b.is_empty() {
        return Some(0);
    }
    for (i, &c) in b.iter().enumerate() {
        let ok = c == b'_' || c == b':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            return Some(i);
        }
    }
    None
}

/// `true` when `name` is a valid label name.
pub fn is_valid_label_name(name: &str) -> bool {
    invalid_label_name_offset(name).is_none()
}

/// `true` when `name` is a valid metric name.
pub fn is_valid_metric_name(name: &str) -> bool {
    invalid_metric_name_offset(name).is_none()
}

/// A sorted, validated set of labels. See the [module docs](self).
///
/// Ordering (`Ord`) compares label by label, name first and then value, a shorter set that is a
/// prefix of a longer one first: the order Prometheus sorts series in.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels {
    labels: SmallVec<[Label; INLINE_LABELS]>,
}

impl Labels {
    /// The empty label set.
    pub fn empty() -> Self {
        Labels::default()
    }

    /// Builds a label set from pairs in any order, validated with the default [`LabelLimits`].
    /// Pairs with an empty value are dropped.
    ///
    /// # Errors
    /// A [`LabelError`] for an invalid or duplicate name or a limit exceeded.
    pub fn from_pairs<N, V, I>(pairs: I) -> Result<Self, LabelError>
    where
        N: AsRef<str>,
        V: AsRef<str>,
        I: IntoIterator<Item = (N, V)>,
    {
        let mut b = LabelsBuilder::new();
        for (n, v) in pairs {
            b.set(n.as_ref(), v.as_ref());
        }
        b.build()
    }

    /// Builds a label set from labels that the caller guarantees are sorted by name, unique,
    /// valid and non-empty (for example, read back from a store that validated them). Cheap:
    /// no validation.
    pub fn from_sorted_unchecked(labels: impl IntoIterator<Item = Label>) -> Self {
        let labels: SmallVec<[Label; INLINE_LABELS]> = labels.into_iter().collect();
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name), "labels not sorted");
        Labels { labels }
    }

    /// The labels, sorted by name.
    pub fn as_slice(&self) -> &[Label] {
        &self.labels
    }

    /// Iterates over the labels in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.labels.iter()
    }

    /// Number of labels, `__name__` included.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// `true` for the empty set.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The value of label `name`, or `None` when absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels.binary_search_by(|l| (*l.name).cmp(name)).ok().map(|i| &*self.labels[i].value)
    }

    /// `true` when the set has label `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The metric name (`__name__`), if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// The stable 64-bit hash of this set; see [`Fingerprint`].
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_sorted_pairs(self.labels.iter().map(|l| (&*l.name, &*l.value)))
    }

    /// A copy without the metric name.
    pub fn without_metric_name(&self) -> Labels {
        self.without(&[METRIC_NAME])
    }

    /// A copy without the given label names.
    pub fn without(&self, names: &[&str]) -> Labels {
        Labels { labels: self.labels.iter().filter(|l| !names.contains(&&*l.name)).cloned().collect() }
    }

    /// A copy keeping only the given label names.
    pub fn keep_only(&self, names: &[&str]) -> Labels {
        Labels { labels: self.labels.iter().filter(|l| names.contains(&&*l.name)).cloned().collect() }
    }

    /// A builder that starts from this set.
    pub fn to_builder(&self) -> LabelsBuilder {
        LabelsBuilder { pairs: self.labels.iter().cloned().collect(), limits: LabelLimits::default() }
    }

    /// Total bytes of names and values: what the strings of this set weigh.
    pub fn bytes_len(&self) -> usize {
        self.labels.iter().map(|l| l.name.len() + l.value.len()).sum()
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.labels.iter()
    }
}

/// Writes a string with the escapes of the Prometheus text format: `\\`, `\"` and `\n`.
pub(crate) struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let esc = match b {
                b'\\' => "\\\\",
                b'"' => "\\\"",
                b'\n' => "\\n",
                _ => continue,
            };
            f.write_str(&s[start..i])?;
            f.write_str(esc)?;
            start = i + 1;
        }
        f.write_str(&s[start..])
    }
}

/// Prometheus notation: `name{a="b",c="d"}`; `{a="b"}` without a metric name; values escaped
/// as in the text exposition format.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        if let Some(n) = name {
            f.write_str(n)?;
        }
        let mut first = true;
        for l in self.labels.iter().filter(|l| &*l.name != METRIC_NAME) {
            f.write_str(if first { "{" } else { "," })?;
            first = false;
            write!(f, "{}=\"{}\"", l.name, Escaped(&l.value))?;
        }
        if !first {
            f.write_str("}")?;
        } else if name.is_none() {
            f.write_str("{}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.len()))?;
        for l in &self.labels {
            m.serialize_entry(&*l.name, &*l.value)?;
        }
        m.end()
    }
}

impl<'de> serde::Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, String>::deserialize(d)?;
        Labels::from_pairs(map).map_err(serde::de::Error::custom)
    }
}

/// Builds a [`Labels`] value: set and delete labels in any order, then [`build`](Self::build)
/// sorts and validates.
///
/// ```
/// use telemetry_core::LabelsBuilder;
/// let labels = LabelsBuilder::new()
///     .metric_name("http_requests_total")
///     .label("method", "GET")
///     .label("code", "200")
///     .build()
///     .unwrap();
/// assert_eq!(labels.to_string(), r#"http_requests_total{code="200",method="GET"}"#);
/// ```
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder {
    pairs: Vec<Label>,
    limits: LabelLimits,
}

impl LabelsBuilder {
    /// An empty builder with the default [`LabelLimits`].
    pub fn new() -> Self {
        LabelsBuilder::default()
    }

    /// Uses `limits` instead of the defaults.
    pub fn with_limits(mut self, limits: LabelLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets label `name` to `value` (replacing an earlier value); an empty value deletes it.
    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        if let Some(l) = self.pairs.iter_mut().find(|l| &*l.name == name) {
            l.value = value.into();
        } else {
            self.pairs.push(Label::new(name, value));
        }
        self
    }

    /// Deletes label `name`.
    pub fn delete(&mut self, name: &str) -> &mut Self {
        self.pairs.retain(|l| &*l.name != name);
        self
    }

    /// Chaining form of [`set`](Self::set).
    pub fn label(mut self, name: &str, value: &str) -> Self {
        self.set(name, value);
        self
    }

    /// Chaining form of setting `__name__`.
    pub fn metric_name(self, name: &str) -> Self {
        self.label(METRIC_NAME, name)
    }

    /// Adds a pair without looking for an earlier one with the same name, so that
    /// [`build`](Self::build) can report duplicates (as parsers need).
    pub fn push(&mut self, name: &str, value: &str) -> &mut Self {
        self.pairs.push(Label::new(name, value));
        self
    }

    /// Sorts, drops empty values and validates.
    ///
    /// # Errors
    /// [`LabelError`] naming the first offending label.
    pub fn build(mut self) -> Result<Labels, LabelError> {
        self.pairs.retain(|l| !l.value.is_empty());
        let lim = self.limits;
        if self.pairs.len() > lim.max_labels {
            return Err(LabelError::TooManyLabels { count: self.pairs.len(), max: lim.max_labels });
        }
        self.pairs.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        for (i, l) in self.pairs.iter().enumerate() {
            if i > 0 && self.pairs[i - 1].name == l.name {
                return Err(LabelError::DuplicateName { name: l.name.to_string() });
            }
            if l.name.len() > lim.max_name_len {
                return Err(LabelError::NameTooLong {
                    name: truncate(&l.name, lim.max_name_len),
                    len: l.name.len(),
                    max: lim.max_name_len,
                });
            }
            if let Some(offset) = invalid_label_name_offset(&l.name) {
                return Err(LabelError::InvalidName { name: l.name.to_string(), offset });
            }
            if l.value.len() > lim.max_value_len {
                return Err(LabelError::ValueTooLong {
                    name: l.name.to_string(),
                    len: l.value.len(),
                    max: lim.max_value_len,
                });
            }
            if &*l.name == METRIC_NAME
                && let Some(offset) = invalid_metric_name_offset(&l.value)
            {
                return Err(LabelError::InvalidMetricName { name: l.value.to_string(), offset });
            }
        }
        Ok(Labels { labels: self.pairs.into_iter().collect() })
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_and_drops_empty_values() {
        let l = Labels::from_pairs([("z", "1"), ("__name__", "m"), ("a", ""), ("b", "2")]).unwrap();
        let names: Vec<&str> = l.iter().map(|l| &*l.name).collect();
        assert_eq!(names, ["__name__", "b", "z"]);
        assert_eq!(l.get("b"), Some("2"));
        assert_eq!(l.get("a"), None);
        assert_eq!(l.metric_name(), Some("m"));
    }

    #[test]
    fn rejects_bad_names_with_offset() {
        assert_eq!(
            Labels::from_pairs([("a-b", "1")]).unwrap_err(),
            LabelError::InvalidName { name: "a-b".into(), offset: 1 }
        );
        assert_eq!(
            Labels::from_pairs([("1a", "1")]).unwrap_err(),
            LabelError::InvalidName { name: "1a".into(), offset: 0 }
        );
        assert_eq!(
            Labels::from_pairs([("__name__", "a.b")]).unwrap_err(),
            LabelError::InvalidMetricName { name: "a.b".into(), offset: 1 }
        );
        assert!(Labels::from_pairs([("__name__", "job:rate5m")]).is_ok());
        assert!(Labels::from_pairs([("a:b", "1")]).is_err());
    }

    #[test]
    fn rejects_duplicates_and_limits() {
        let mut b = LabelsBuilder::new();
        b.push("a", "1").push("a", "2");
        assert_eq!(b.build().unwrap_err(), LabelError::DuplicateName { name: "a".into() });
        let lim = LabelLimits { max_name_len: 3, max_value_len: 2, max_labels: 2 };
        let too_long = LabelsBuilder::new().with_limits(lim).label("abcd", "1").build();
        assert!(matches!(too_long, Err(LabelError::NameTooLong { len: 4, max: 3, .. })));
        let long_val = LabelsBuilder::new().with_limits(lim).label("a", "123").build();
        assert!(matches!(long_val, Err(LabelError::ValueTooLong { len: 3, max: 2, .. })));
        let many = LabelsBuilder::new().with_limits(lim).label("a", "1").label("b", "1").label("c", "1").build();
        assert_eq!(many.unwrap_err(), LabelError::TooManyLabels { count: 3, max: 2 });
    }

    #[test]
    fn display_escapes() {
        let l = Labels::from_pairs([("__name__", "up"), ("path", "a\"b\\c\nd"), ("job", "x")]).unwrap();
        assert_eq!(l.to_string(), r#"up{job="x",path="a\"b\\c\nd"}"#);
        assert_eq!(Labels::from_pairs([("__name__", "up")]).unwrap().to_string(), "up");
        assert_eq!(Labels::from_pairs([("a", "b")]).unwrap().to_string(), r#"{a="b"}"#);
        assert_eq!(Labels::empty().to_string(), "{}");
    }

    #[test]
    fn order_is_prometheus_order() {
        let a = Labels::from_pairs([("a", "1")]).unwrap();
        let ab = Labels::from_pairs([("a", "1"), ("b", "1")]).unwrap();
        let a2 = Labels::from_pairs([("a", "2")]).unwrap();
        assert!(a < ab && ab < a2);
    }

    #[test]
    fn serde_as_map() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "x")]).unwrap();
        let j = serde_json::to_string(&l).unwrap();
        assert_eq!(j, r#"{"__name__":"up","job":"x"}"#);
        let back: Labels = serde_json::from_str(&j).unwrap();
        assert_eq!(back, l);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
            proptest::collection::vec(("[a-zA-Z_][a-zA-Z0-9_]{0,8}", "\\PC{0,6}"), 0..8)
        }

        proptest! {
            #[test]
            fn built_sets_are_sorted_unique_and_order_independent(mut p in pairs()) {
                p.sort_by(|a, b| a.0.cmp(&b.0));
                p.dedup_by(|a, b| a.0 == b.0);
                let l = Labels::from_pairs(p.iter().map(|(a, b)| (a.as_str(), b.as_str()))).unwrap();
                prop_assert!(l.as_slice().windows(2).all(|w| w[0].name < w[1].name));
                prop_assert!(l.iter().all(|x| !x.value.is_empty()));
                let expected: Vec<(String, String)> = p.iter().filter(|(_, v)| !v.is_empty()).cloned().collect();
                let got: Vec<(String, String)> = l.iter().map(|x| (x.name.to_string(), x.value.to_string())).collect();
                prop_assert_eq!(&got, &expected);
                let mut rev = p.clone();
                rev.reverse();
                let l2 = Labels::from_pairs(rev.iter().map(|(a, b)| (a.as_str(), b.as_str()))).unwrap();
                prop_assert_eq!(l.fingerprint(), l2.fingerprint());
                prop_assert_eq!(&l, &l2);
            }

            #[test]
            fn order_agrees_with_pair_lists(a in pairs(), b in pairs()) {
                let mk = |p: &Vec<(String, String)>| {
                    let mut b = LabelsBuilder::new();
                    for (n, v) in p { b.set(n, v); }
                    b.build().unwrap()
                };
                let (la, lb) = (mk(&a), mk(&b));
                let va: Vec<(&str, &str)> = la.iter().map(|l| (&*l.name, &*l.value)).collect();
                let vb: Vec<(&str, &str)> = lb.iter().map(|l| (&*l.name, &*l.value)).collect();
                prop_assert_eq!(la.cmp(&lb), va.cmp(&vb));
                if la == lb {
                    prop_assert_eq!(la.fingerprint(), lb.fingerprint());
                }
            }

            #[test]
            fn arbitrary_names_never_panic(n in "\\PC{0,12}", v in "\\PC{0,12}") {
                let r = Labels::from_pairs([(n.as_str(), v.as_str())]);
                if v.is_empty() {
                    prop_assert!(r.is_ok());
                } else {
                    prop_assert_eq!(r.is_ok(), is_valid_label_name(&n));
                }
            }
        }
    }
}
