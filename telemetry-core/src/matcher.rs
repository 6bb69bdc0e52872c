//! Label matchers with Prometheus semantics.
//!
//! A matcher tests one label of a series: `name="v"`, `name!="v"`, `name=~"re"`, `name!~"re"`.
//! As in Prometheus (`model/labels/matcher.go`, `regexp.go`):
//! - regular expressions are fully anchored, `^(?s:re)$`, so `.` also matches a newline;
//! - a series that lacks the label is tested as if its value were the empty string, so a matcher
//!   that matches `""` (such as `job=""`, `job!="x"` or `job=~".*"`) also selects series without
//!   the label;
//! - an invalid regular expression is an error when the matcher is built, never at match time.

use std::fmt;

use regex::Regex;
use thiserror::Error;

use crate::labels::{Escaped, Labels};

/// The comparison a [`Matcher`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum MatchOp {
    /// `=`: the value equals the operand.
    Equal,
    /// `!=`: the value differs from the operand.
    NotEqual,
    /// `=~`: the value matches the anchored regular expression.
    RegexMatch,
    /// `!~`: the value does not match the anchored regular expression.
    RegexNoMatch,
}

impl MatchOp {
    /// The operator as PromQL writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch => "=~",
            MatchOp::RegexNoMatch => "!~",
        }
    }

    /// `true` for `!=` and `!~`.
    pub fn is_negative(self) -> bool {
        matches!(self, MatchOp::NotEqual | MatchOp::RegexNoMatch)
    }
}

/// A regular expression that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid regular expression {pattern:?} for label {label:?}: {reason}")]
pub struct MatcherError {
    /// The label the matcher tests.
    pub label: String,
    /// The pattern as given.
    pub pattern: String,
    /// The regex engine's message.
    pub reason: String,
}

/// One label matcher. See the [module docs](self).
#[derive(Clone)]
pub struct Matcher {
    /// The label name tested (`__name__` for the metric name).
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The operand: a literal for `=`/`!=`, a pattern for `=~`/`!~`.
    pub value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher.
    ///
    /// # Errors
    /// [`MatcherError`] when `op` is a regex operator and `value` does not compile.
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self, MatcherError> {
        let name = name.into();
        let value = value.into();
        let regex = match op {
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                Some(Regex::new(&format!("^(?s:{value})$")).map_err(|e| MatcherError {
                    label: name.clone(),
                    pattern: value.clone(),
                    reason: e.to_string(),
                })?)
            }
            _ => None,
        };
        Ok(Matcher { name, op, value, regex })
    }

    /// `name="value"`.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher { name: name.into(), op: MatchOp::Equal, value: value.into(), regex: None }
    }

    /// `name!="value"`.
    pub fn not_equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher { name: name.into(), op: MatchOp::NotEqual, value: value.into(), regex: None }
    }

    /// `name=~"pattern"`.
    ///
    /// # Errors
    /// [`MatcherError`] when the pattern does not compile.
    pub fn regex(name: impl Into<String>, pattern: impl Into<String>) -> Result<Self, MatcherError> {
        Matcher::new(MatchOp::RegexMatch, name, pattern)
    }

    /// `name!~"pattern"`.
    ///
    /// # Errors
    /// [`MatcherError`] when the pattern does not compile.
    pub fn not_regex(name: impl Into<String>, pattern: impl Into<String>) -> Result<Self, MatcherError> {
        Matcher::new(MatchOp::RegexNoMatch, name, pattern)
    }

    /// Tests a label value (`""` for a missing label).
    #[inline]
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => self.value == value,
            MatchOp::NotEqual => self.value != value,
            // ok: `regex` is always Some for the regex operators (set in `new`).
            MatchOp::RegexMatch => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::RegexNoMatch => self.regex.as_ref().is_none_or(|r| !r.is_match(value)),
        }
    }

    /// Tests a series: its value of label [`name`](Self::name), or `""` when it has none.
    #[inline]
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }

    /// `true` when the matcher accepts the empty string, and so series without the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// The compiled, anchored regular expression of a regex matcher.
    pub fn compiled_regex(&self) -> Option<&Regex> {
        self.regex.as_ref()
    }
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.op == o.op && self.value == o.value
    }
}

impl Eq for Matcher {}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// PromQL notation: `name="value"`, with the value escaped.
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"{}\"", self.name, self.op.as_str(), Escaped(&self.value))
    }
}

/// `true` when every matcher accepts `labels` (matchers are ANDed, as in a PromQL selector).
pub fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches_labels(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn regex_is_anchored_and_dotall() {
        let m = Matcher::regex("job", "no.e").unwrap();
        assert!(m.matches("node"));
        assert!(!m.matches("node2"));
        assert!(!m.matches("xnode"));
        assert!(Matcher::regex("a", "a.b").unwrap().matches("a\nb"));
        let alt = Matcher::regex("a", "x|y").unwrap();
        assert!(alt.matches("x") && alt.matches("y") && !alt.matches("xy"));
    }

    #[test]
    fn empty_matching_selects_missing_labels() {
        let s = ls(&[("__name__", "up")]);
        assert!(Matcher::equal("job", "").matches_labels(&s));
        assert!(Matcher::not_equal("job", "x").matches_labels(&s));
        assert!(Matcher::regex("job", ".*").unwrap().matches_labels(&s));
        assert!(!Matcher::regex("job", ".+").unwrap().matches_labels(&s));
        assert!(!Matcher::equal("job", "x").matches_labels(&s));
        assert!(Matcher::not_regex("job", "x.*").unwrap().matches_labels(&s));
    }

    #[test]
    fn invalid_regex_is_an_error() {
        let e = Matcher::regex("job", "a(b").unwrap_err();
        assert_eq!(e.label, "job");
        assert_eq!(e.pattern, "a(b");
    }

    #[test]
    fn display() {
        assert_eq!(Matcher::regex("a", "b\"c").unwrap().to_string(), r#"a=~"b\"c""#);
        assert_eq!(Matcher::not_equal("a", "b").to_string(), r#"a!="b""#);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// An escaped literal regex matches exactly what `=` matches.
            #[test]
            fn literal_regex_agrees_with_equal(lit in "\\PC{0,8}", v in "\\PC{0,8}") {
                let re = Matcher::regex("a", regex::escape(&lit)).unwrap();
                let eq = Matcher::equal("a", lit.clone());
                prop_assert_eq!(re.matches(&v), eq.matches(&v));
                prop_assert!(re.matches(&lit));
                let nre = Matcher::not_regex("a", regex::escape(&lit)).unwrap();
                prop_assert_eq!(nre.matches(&v), !eq.matches(&v));
            }

            #[test]
            fn arbitrary_patterns_never_panic(p in "\\PC{0,12}", v in "\\PC{0,8}") {
                if let Ok(m) = Matcher::regex("a", p) {
                    let _ = m.matches(&v);
                }
            }
        }
    }
}
