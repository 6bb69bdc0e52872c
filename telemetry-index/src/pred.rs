//! Compiling a [`Matcher`] into a predicate on label values with fast paths.
//!
//! The pattern of a regex matcher is parsed once with `regex-syntax` (the parser of the
//! `regex` crate, so the two agree on the language) and classified, in the spirit of
//! Prometheus' `FastRegexMatcher` (`model/labels/regexp.go`):
//! - a finite set of strings (`a|b|c`, `(?i)up`, `node_(cpu|load1)`, up to [`MAX_SET`]
//!   strings) becomes direct postings look-ups;
//! - `.*` (any value) and `.+` (any non-empty value) need no test at all;
//! - a literal prefix (`api-.*`, `api-(x|y)\d+`) restricts the scan to the sorted value range
//!   that starts with it; if the rest is `.*` or `.+` no regex runs;
//! - a literal suffix or infix (`.*-prod`, `.*err.*`) is a substring test;
//! - a fixed-length sequence of character classes (`(?i)node_exporter`) is tested char by char;
//! - anything else runs the compiled regex once per distinct label value in the candidate range.

use regex::Regex;
use regex_syntax::hir::{Class, Hir, HirKind};
use telemetry_core::{MatchOp, Matcher};

/// Largest finite set of strings expanded into direct look-ups.
pub const MAX_SET: usize = 256;

/// A test on a label value; see the [module docs](self).
#[derive(Debug, Clone)]
pub(crate) enum Pred {
    /// Exactly these strings (sorted, unique).
    Set(Vec<String>),
    /// Every value (`.*`).
    Any,
    /// Every non-empty value (`.+`).
    NonEmpty,
    /// Starts with `prefix`; then the rest must satisfy `tail`.
    Prefix { prefix: String, tail: Tail },
    /// Ends with `suffix`, with at least `min_lead` chars before it.
    Suffix { suffix: String, min_lead: usize },
    /// Contains `infix`.
    Contains { infix: String },
    /// Exactly one char per class, each char in its class (sorted ranges).
    Seq(Vec<Vec<(char, char)>>),
    /// Fall back to the regex; values must start with `prefix` (possibly empty).
    Regex { prefix: String, re: Regex },
}

/// What follows a literal prefix.
#[derive(Debug, Clone)]
pub(crate) enum Tail {
    Any,
    NonEmpty,
    Regex(Regex),
}

/// A matcher as a predicate: the matcher accepts `v` iff `pred(v) != negate`.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub pred: Pred,
    pub negate: bool,
}

impl Compiled {
    pub fn new(m: &Matcher) -> Compiled {
        match m.op {
            MatchOp::Equal => Compiled { pred: Pred::Set(vec![m.value.clone()]), negate: false },
            MatchOp::NotEqual => Compiled { pred: Pred::Set(vec![m.value.clone()]), negate: true },
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                let negate = m.op == MatchOp::RegexNoMatch;
                let pred = match m.compiled_regex() {
                    Some(re) => analyze(&m.value, re),
                    // ok: unreachable for matchers built by `Matcher::new`; fall back to an
                    // exact test so that the result still equals `Matcher::matches`.
                    None => Pred::Set(vec![m.value.clone()]),
                };
                Compiled { pred, negate }
            }
        }
    }
}

impl Pred {
    /// Tests one value.
    pub fn test(&self, v: &str) -> bool {
        match self {
            Pred::Set(s) => s.binary_search_by(|x| x.as_str().cmp(v)).is_ok(),
            Pred::Any => true,
            Pred::NonEmpty => !v.is_empty(),
            Pred::Prefix { prefix, tail } => match v.strip_prefix(prefix.as_str()) {
                None => false,
                Some(rest) => match tail {
                    Tail::Any => true,
                    Tail::NonEmpty => !rest.is_empty(),
                    Tail::Regex(re) => re.is_match(v),
                },
            },
            Pred::Suffix { suffix, min_lead } => {
                v.strip_suffix(suffix.as_str()).is_some_and(|lead| lead.chars().count() >= *min_lead)
            }
            Pred::Contains { infix } => v.contains(infix.as_str()),
            Pred::Seq(classes) => {
                let mut it = v.chars();
                for c in classes {
                    match it.next() {
                        Some(ch) if in_class(c, ch) => {}
                        _ => return false,
                    }
                }
                it.next().is_none()
            }
            Pred::Regex { re, .. } => re.is_match(v),
        }
    }

    /// The literal every accepted value starts with ("" when none is known).
    pub fn prefix(&self) -> &str {
        match self {
            Pred::Prefix { prefix, .. } | Pred::Regex { prefix, .. } => prefix,
            _ => "",
        }
    }
}

fn in_class(ranges: &[(char, char)], ch: char) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= ch && ch <= hi)
}

/// Classifies `pattern` (as anchored by [`Matcher`]); `re` is the matcher's compiled regex
/// used when no fast path applies.
pub(crate) fn analyze(pattern: &str, re: &Regex) -> Pred {
    let general = || Pred::Regex { prefix: String::new(), re: re.clone() };
    let Ok(hir) = regex_syntax::ParserBuilder::new().dot_matches_new_line(true).build().parse(pattern) else {
        return general();
    };
    let hir = strip_captures(&hir);
    if let Some(mut set) = literals(hir, MAX_SET) {
        set.sort_unstable();
        set.dedup();
        return Pred::Set(set);
    }
    if let Some(min) = any_rep(hir) {
        return if min == 0 { Pred::Any } else { Pred::NonEmpty };
    }
    if let Some(seq) = class_seq(hir) {
        return Pred::Seq(seq);
    }
    if let HirKind::Concat(parts) = hir.kind() {
        let parts: Vec<&Hir> = parts.iter().map(strip_captures).collect();
        // Literal prefix.
        if let Some(prefix) = single_literal(parts[0]) {
            let rest = &parts[1..];
            let tail = match rest {
                [one] => match any_rep(one) {
                    Some(0) => Tail::Any,
                    Some(1) => Tail::NonEmpty,
                    _ => Tail::Regex(re.clone()),
                },
                _ => Tail::Regex(re.clone()),
            };
            return Pred::Prefix { prefix, tail };
        }
        // Literal suffix / infix after `.*` or `.+`.
        if let Some(lead) = any_rep(parts[0]).filter(|m| *m <= 1) {
            match &parts[1..] {
                [lit] => {
                    if let Some(suffix) = single_literal(lit) {
                        return Pred::Suffix { suffix, min_lead: lead as usize };
                    }
                }
                [lit, trail] => {
                    // Only `.*lit.*`: with `.+` on either side, "some occurrence has a char
                    // before it" is not a length test, so that case goes to the regex.
                    if let (Some(infix), Some(0), 0) = (single_literal(lit), any_rep(trail), lead) {
                        return Pred::Contains { infix };
                    }
                }
                _ => {}
            }
        }
    }
    general()
}

fn strip_captures(h: &Hir) -> &Hir {
    match h.kind() {
        HirKind::Capture(c) => strip_captures(&c.sub),
        _ => h,
    }
}

/// `Some(min)` when `h` is `.{min,}` over any char (with `.` matching newlines).
fn any_rep(h: &Hir) -> Option<u32> {
    let h = strip_captures(h);
    let HirKind::Repetition(r) = h.kind() else { return None };
    if r.max.is_some() || !is_any_char(strip_captures(&r.sub)) {
        return None;
    }
    Some(r.min)
}

fn is_any_char(h: &Hir) -> bool {
    match h.kind() {
        HirKind::Class(Class::Unicode(c)) => {
            let r = c.ranges();
            r.len() == 1 && r[0].start() == '\0' && r[0].end() == char::MAX
        }
        _ => false,
    }
}

/// The single string `h` matches, if it is one literal.
fn single_literal(h: &Hir) -> Option<String> {
    match strip_captures(h).kind() {
        HirKind::Literal(l) => String::from_utf8(l.0.to_vec()).ok(),
        _ => None,
    }
}

/// All strings `h` matches when that set is finite and at most `cap` strings.
fn literals(h: &Hir, cap: usize) -> Option<Vec<String>> {
    match h.kind() {
        HirKind::Empty => Some(vec![String::new()]),
        HirKind::Literal(l) => Some(vec![String::from_utf8(l.0.to_vec()).ok()?]),
        HirKind::Class(Class::Unicode(c)) => {
            let mut out = Vec::new();
            for r in c.ranges() {
                let n = (r.end() as u32).checked_sub(r.start() as u32)? as usize + 1;
                if out.len() + n > cap {
                    return None;
                }
                for ch in r.start()..=r.end() {
                    out.push(ch.to_string());
                }
            }
            Some(out)
        }
        HirKind::Capture(c) => literals(&c.sub, cap),
        HirKind::Alternation(subs) => {
            let mut out = Vec::new();
            for s in subs {
                out.extend(literals(s, cap)?);
                if out.len() > cap {
                    return None;
                }
            }
            Some(out)
        }
        HirKind::Concat(parts) => {
            let mut acc = vec![String::new()];
            for p in parts {
                let next = literals(p, cap)?;
                if acc.len().checked_mul(next.len())? > cap {
                    return None;
                }
                acc = acc.iter().flat_map(|a| next.iter().map(move |b| format!("{a}{b}"))).collect();
            }
            Some(acc)
        }
        HirKind::Repetition(r) if r.max == Some(r.min) && r.min <= 8 => {
            let one = literals(&r.sub, cap)?;
            let mut acc = vec![String::new()];
            for _ in 0..r.min {
                if acc.len().checked_mul(one.len())? > cap {
                    return None;
                }
                acc = acc.iter().flat_map(|a| one.iter().map(move |b| format!("{a}{b}"))).collect();
            }
            Some(acc)
        }
        _ => None,
    }
}

/// A fixed-length sequence of single chars and classes, as ranges per position.
fn class_seq(h: &Hir) -> Option<Vec<Vec<(char, char)>>> {
    let parts: Vec<&Hir> = match h.kind() {
        HirKind::Concat(p) => p.iter().collect(),
        _ => vec![h],
    };
    let mut out = Vec::new();
    for p in parts {
        match strip_captures(p).kind() {
            HirKind::Literal(l) => {
                for ch in std::str::from_utf8(&l.0).ok()?.chars() {
                    out.push(vec![(ch, ch)]);
                }
            }
            HirKind::Class(Class::Unicode(c)) => out.push(c.ranges().iter().map(|r| (r.start(), r.end())).collect()),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(p: &str) -> Pred {
        let m = Matcher::regex("x", p).unwrap();
        Compiled::new(&m).pred
    }

    #[test]
    fn classifies_fast_paths() {
        assert!(matches!(pred("a|b|c"), Pred::Set(s) if s == ["a", "b", "c"]));
        assert!(matches!(pred("foo|foobar"), Pred::Set(s) if s == ["foo", "foobar"]));
        assert!(matches!(pred("(?i)up"), Pred::Set(s) if s.len() == 4));
        assert!(matches!(pred(".*"), Pred::Any));
        assert!(matches!(pred(".+"), Pred::NonEmpty));
        assert!(matches!(pred("api-.*"), Pred::Prefix { tail: Tail::Any, .. }));
        assert!(matches!(pred("api-.+"), Pred::Prefix { tail: Tail::NonEmpty, .. }));
        assert!(matches!(pred("api-[0-9]+"), Pred::Prefix { tail: Tail::Regex(_), .. }));
        assert!(matches!(pred(".*-prod"), Pred::Suffix { min_lead: 0, .. }));
        assert!(matches!(pred(".*err.*"), Pred::Contains { .. }));
        assert!(matches!(pred("(?i)node_exporter"), Pred::Seq(_)));
        assert!(matches!(pred("[a-z]+[0-9]"), Pred::Regex { .. }));
        assert!(matches!(pred(""), Pred::Set(s) if s == [""]));
    }

    #[test]
    fn fast_paths_agree_with_regex() {
        let pats = [
            "a|b|c",
            "foo|foobar",
            "(?i)up",
            ".*",
            ".+",
            "api-.*",
            "api-.+",
            "api-[0-9]+",
            ".*-prod",
            ".+-prod",
            ".*err.*",
            ".+err.+",
            "(?i)node_exporter",
            "(?i)k",
            "[a-z]+[0-9]",
            "",
            "a?",
            "(ab){2}",
            "x\ny",
            "é|ü",
        ];
        let vals = [
            "",
            "a",
            "b",
            "d",
            "foo",
            "foobar",
            "up",
            "UP",
            "uP",
            "api-",
            "api-1",
            "api-12x",
            "x-prod",
            "-prod",
            "err",
            "xerrx",
            "NODE_exporter",
            "node_exporter",
            "K",
            "\u{212A}",
            "ab",
            "abab",
            "a1",
            "x\ny",
            "é",
        ];
        for p in pats {
            let m = Matcher::regex("x", p).unwrap();
            let c = Compiled::new(&m);
            for v in vals {
                assert_eq!(c.pred.test(v), m.matches(v), "pattern {p:?} value {v:?} pred {:?}", c.pred);
            }
        }
    }
}
