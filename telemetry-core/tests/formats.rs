//! Round trips, "arbitrary bytes never panic" properties and error positions for every wire
//! format.

use std::borrow::Cow;

use proptest::prelude::*;
use telemetry_core::MetricType;
use telemetry_core::format::influx::{self, FieldInput, FieldValue, InfluxDecoder, InfluxErrorKind};
use telemetry_core::format::json::{self, JsonMetricKind, JsonPoint, JsonSeries, SeriesPayload};
use telemetry_core::format::number::PARSED_NAN_BITS;
use telemetry_core::format::statsd::{self, StatsdDecoder, StatsdMetric, StatsdType, StatsdValue};
use telemetry_core::format::text::{Entry, Flavor, TextDecoder, TextEncoder, TextError, TextErrorKind};

// ---------------------------------------------------------------- strategies

fn metric_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}"
}

fn label_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,8}"
}

/// Label values with the characters that need escapes, and non-ASCII.
fn label_value() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            "[a-z0-9 ]",
            Just("\\".to_string()),
            Just("\"".into()),
            Just("\n".into()),
            Just("é".into()),
            Just("#".into()),
            Just("{}".into())
        ],
        0..8,
    )
    .prop_map(|v| v.concat())
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>(),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(-0.0),
        2 => (-1_000_000i64..1_000_000).prop_map(|i| i as f64),
        2 => (0u32..100000, -12i32..12).prop_map(|(m, e)| m as f64 * 10f64.powi(e)),
    ]
}

fn expected_bits(v: f64) -> u64 {
    if v.is_nan() { PARSED_NAN_BITS } else { v.to_bits() }
}

/// Exemplar labels, value and timestamp.
type ExemplarCase = (Vec<(String, String)>, f64, Option<i64>);

#[derive(Debug, Clone)]
struct TextSample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    ts: Option<i64>,
    exemplar: Option<ExemplarCase>,
}

fn text_sample(with_exemplar: bool) -> impl Strategy<Value = TextSample> {
    let ex = if with_exemplar {
        proptest::option::of((
            proptest::collection::vec((label_name(), label_value()), 0..3),
            value(),
            proptest::option::of(-10_000_000_000_000i64..10_000_000_000_000),
        ))
        .boxed()
    } else {
        Just(None).boxed()
    };
    (
        metric_name(),
        proptest::collection::vec((label_name(), label_value()), 0..5),
        value(),
        proptest::option::of(prop_oneof![any::<i64>(), -10_000_000_000_000i64..10_000_000_000_000]),
        ex,
    )
        .prop_map(|(name, labels, value, ts, exemplar)| TextSample { name, labels, value, ts, exemplar })
}

#[derive(Debug, Clone)]
enum TextItem {
    Type(String, MetricType),
    Help(String, String),
    Unit(String, String),
    Sample(TextSample),
}

fn metric_type() -> impl Strategy<Value = MetricType> {
    prop_oneof![
        Just(MetricType::Counter),
        Just(MetricType::Gauge),
        Just(MetricType::Histogram),
        Just(MetricType::GaugeHistogram),
        Just(MetricType::Summary),
        Just(MetricType::Info),
        Just(MetricType::StateSet),
        Just(MetricType::Unknown),
    ]
}

fn text_item(flavor: Flavor) -> BoxedStrategy<TextItem> {
    let om = flavor == Flavor::OpenMetrics;
    // 0.0.4 cannot carry leading blanks in help text; OpenMetrics can.
    let help =
        if om { "[ a-zA-Z0-9\\\\\"\n.é]{0,20}" } else { "[a-zA-Z0-9\\\\\"\n.é][ a-zA-Z0-9\\\\\"\n.é]{0,20}|" };
    let mut options = vec![
        (metric_name(), metric_type()).prop_map(|(n, t)| TextItem::Type(n, t)).boxed(),
        (metric_name(), help).prop_map(|(n, h)| TextItem::Help(n, h)).boxed(),
        text_sample(om).prop_map(TextItem::Sample).boxed(),
        text_sample(om).prop_map(TextItem::Sample).boxed(),
    ];
    if om {
        options.push((metric_name(), "[a-z_]{0,8}").prop_map(|(n, u)| TextItem::Unit(n, u)).boxed());
    }
    proptest::strategy::Union::new(options).boxed()
}

fn encode_items(flavor: Flavor, items: &[TextItem]) -> Vec<u8> {
    let enc = TextEncoder::new(flavor);
    let mut out = Vec::new();
    for it in items {
        match it {
            TextItem::Type(n, t) => enc.write_type(&mut out, n, *t).unwrap(),
            TextItem::Help(n, h) => enc.write_help(&mut out, n, h).unwrap(),
            TextItem::Unit(n, u) => enc.write_unit(&mut out, n, u).unwrap(),
            TextItem::Sample(s) => {
                let labels = s.labels.iter().map(|(n, v)| (n.as_str(), v.as_str()));
                let ex = s.exemplar.as_ref().map(|(l, v, t)| (l.iter().map(|(n, v)| (n.as_str(), v.as_str())), *v, *t));
                enc.write_sample_with_exemplar(&mut out, &s.name, labels, s.value, s.ts, ex).unwrap()
            }
        }
    }
    enc.write_eof(&mut out);
    out
}

fn check_text_round_trip(flavor: Flavor, items: &[TextItem]) -> Result<(), TestCaseError> {
    let out = encode_items(flavor, items);
    let entries: Vec<Entry<'_>> = TextDecoder::new(&out, flavor)
        .collect::<Result<_, _>>()
        .map_err(|e| TestCaseError::fail(format!("{e} in {:?}", String::from_utf8_lossy(&out))))?;
    let expected_len = items.len() + usize::from(flavor == Flavor::OpenMetrics);
    prop_assert_eq!(entries.len(), expected_len);
    for (it, e) in items.iter().zip(&entries) {
        match (it, e) {
            (TextItem::Type(n, t), Entry::Type { family, metric_type }) => {
                prop_assert_eq!(n, family);
                prop_assert_eq!(t, metric_type);
            }
            (TextItem::Help(n, h), Entry::Help { family, help }) => {
                prop_assert_eq!(n, family);
                prop_assert_eq!(h, &help.unescape());
            }
            (TextItem::Unit(n, u), Entry::Unit { family, unit }) => {
                prop_assert_eq!(n, family);
                prop_assert_eq!(u, unit);
            }
            (TextItem::Sample(s), Entry::Sample(d)) => {
                prop_assert_eq!(&s.name, d.name);
                let got: Vec<(String, String)> =
                    d.labels.iter().map(|(n, v)| (n.to_string(), v.into_owned())).collect();
                prop_assert_eq!(&s.labels, &got);
                prop_assert_eq!(expected_bits(s.value), d.value.to_bits());
                let ts = match flavor {
                    Flavor::Prometheus => s.ts,
                    Flavor::OpenMetrics => s.ts,
                };
                prop_assert_eq!(ts, d.timestamp_ms);
                match (&s.exemplar, &d.exemplar) {
                    (None, None) => {}
                    (Some((l, v, t)), Some(x)) => {
                        let got: Vec<(String, String)> =
                            x.labels.iter().map(|(n, v)| (n.to_string(), v.into_owned())).collect();
                        prop_assert_eq!(l, &got);
                        prop_assert_eq!(expected_bits(*v), x.value.to_bits());
                        prop_assert_eq!(t, &x.timestamp_ms);
                    }
                    _ => prop_assert!(false, "exemplar mismatch {:?} vs {:?}", s.exemplar, d.exemplar),
                }
            }
            _ => prop_assert!(false, "{:?} decoded as {:?}", it, e),
        }
    }
    if flavor == Flavor::OpenMetrics {
        prop_assert_eq!(entries.last(), Some(&Entry::Eof));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn prometheus_text_round_trip(items in proptest::collection::vec(text_item(Flavor::Prometheus), 0..12)) {
        check_text_round_trip(Flavor::Prometheus, &items)?;
    }

    #[test]
    fn openmetrics_round_trip(items in proptest::collection::vec(text_item(Flavor::OpenMetrics), 0..12)) {
        check_text_round_trip(Flavor::OpenMetrics, &items)?;
    }

    #[test]
    fn text_decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        for flavor in [Flavor::Prometheus, Flavor::OpenMetrics] {
            for e in TextDecoder::new(&data, flavor) {
                if let Ok(Entry::Sample(s)) = e {
                    let _ = s.to_labels();
                    let _ = s.labels.iter().count();
                }
            }
        }
    }

    #[test]
    fn text_decoders_never_panic_on_near_valid_text(data in "[a-z_{}=\",# .0-9\\\\\nNaIf+eE\t-]{0,200}") {
        for flavor in [Flavor::Prometheus, Flavor::OpenMetrics] {
            for e in TextDecoder::new(data.as_bytes(), flavor) {
                if let Ok(Entry::Sample(s)) = e {
                    let _ = s.to_labels();
                }
            }
        }
    }
}

// ---------------------------------------------------------------- text errors

fn text_err(input: &str, flavor: Flavor) -> TextError {
    TextDecoder::new(input.as_bytes(), flavor).find_map(Result::err).expect("an error")
}

#[test]
fn text_errors_name_line_and_column() {
    use Flavor::*;
    let e = text_err("up 1\nup{a=\"b\" 2\n", Prometheus);
    assert_eq!((e.line, e.column), (2, 10));
    assert_eq!(e.kind, TextErrorKind::Expected { expected: "',' or '}'" });
    let e = text_err("up{1a=\"b\"} 2\n", Prometheus);
    assert_eq!((e.line, e.column, e.kind), (1, 4, TextErrorKind::ExpectedLabelName));
    let e = text_err("up{a=\"b\\x\"} 2\n", Prometheus);
    assert_eq!((e.line, e.column, e.kind), (1, 8, TextErrorKind::InvalidEscape));
    let e = text_err("up{a=\"b} 2\n", Prometheus);
    assert_eq!((e.line, e.kind), (1, TextErrorKind::UnterminatedLabelValue));
    let e = text_err("up abc\n", Prometheus);
    assert_eq!((e.column, e.kind), (4, TextErrorKind::InvalidValue("abc".into())));
    let e = text_err("up 1e400\n", Prometheus);
    assert_eq!(e.kind, TextErrorKind::InvalidValue("1e400".into()));
    let e = text_err("up 1 1.5\n", Prometheus);
    assert_eq!((e.column, e.kind), (6, TextErrorKind::InvalidTimestamp("1.5".into())));
    let e = text_err("up 1 2 3\n", Prometheus);
    assert_eq!((e.column, e.kind), (8, TextErrorKind::TrailingText));
    let e = text_err("# TYPE up gauges\n", Prometheus);
    assert_eq!((e.column, e.kind), (11, TextErrorKind::UnknownType("gauges".into())));
    let e = text_err("{a=\"b\"} 1\n", Prometheus);
    assert_eq!((e.column, e.kind), (1, TextErrorKind::ExpectedMetricName));
    let e = TextDecoder::new(b"up 1\n\xff\n", Prometheus).find_map(Result::err).unwrap();
    assert_eq!((e.line, e.column, e.kind), (2, 1, TextErrorKind::InvalidUtf8));
    // OpenMetrics specifics
    let e = text_err("up 1\n", OpenMetrics);
    assert_eq!((e.line, e.kind), (2, TextErrorKind::MissingEof));
    let e = text_err("up 1\n# EOF\nup 2\n", OpenMetrics);
    assert_eq!((e.line, e.kind), (3, TextErrorKind::DataAfterEof));
    let e = text_err("up 1\n\n# EOF\n", OpenMetrics);
    assert_eq!((e.line, e.kind), (2, TextErrorKind::BlankLine));
    let e = text_err("# hello\n# EOF\n", OpenMetrics);
    assert_eq!((e.line, e.kind), (1, TextErrorKind::InvalidComment));
    let e = text_err("up 1 x\n# EOF\n", OpenMetrics);
    assert_eq!((e.column, e.kind), (6, TextErrorKind::InvalidTimestamp("x".into())));
    let e = text_err("up 1 # {a=\"b\"}\n# EOF\n", OpenMetrics);
    assert_eq!((e.column, e.kind), (15, TextErrorKind::Expected { expected: "' '" }));
    let e = text_err("up  1\n# EOF\n", OpenMetrics);
    assert_eq!((e.column, e.kind), (4, TextErrorKind::InvalidValue(String::new())));
    let e = text_err("# UNIT up a b\n# EOF\n", OpenMetrics);
    assert!(e.to_string().starts_with("line 1, column 11: "));
    assert_eq!((e.column, e.kind), (11, TextErrorKind::MalformedMetadata("# UNIT")));
    assert!(text_err("# UNIT up a b\n# EOF\n", OpenMetrics).to_string().starts_with("line 1, column 11: "));
}

#[test]
fn text_decodes_the_documented_shapes() {
    let om = "# TYPE http_request_duration_seconds histogram\n# HELP http_request_duration_seconds A \\\"help\\\"\\nline\n# UNIT http_request_duration_seconds seconds\nhttp_request_duration_seconds_bucket{le=\"+Inf\",path=\"/a\\\\b\"} 3 1795264944.510 # {trace_id=\"abc\"} 0.25 1795264944.000\nx NaN\nx -Inf 1.5\n# EOF\n";
    let entries: Vec<_> = TextDecoder::new(om.as_bytes(), Flavor::OpenMetrics).collect::<Result<_, _>>().unwrap();
    assert_eq!(entries.len(), 7);
    let Entry::Help { help, .. } = &entries[1] else { panic!() };
    assert_eq!(help.unescape(), "A \"help\"\nline");
    assert_eq!(entries[2], Entry::Unit { family: "http_request_duration_seconds", unit: "seconds" });
    let Entry::Sample(s) = &entries[3] else { panic!() };
    assert_eq!(s.timestamp_ms, Some(1795264944510));
    let labels: Vec<_> = s.labels.iter().collect();
    assert_eq!(labels, [("le", Cow::Borrowed("+Inf")), ("path", Cow::Owned("/a\\b".to_string()))]);
    let ex = s.exemplar.as_ref().unwrap();
    assert_eq!((ex.value, ex.timestamp_ms), (0.25, Some(1795264944000)));
    assert_eq!(s.to_labels().unwrap().to_string(), r#"http_request_duration_seconds_bucket{le="+Inf",path="/a\\b"}"#);
    let Entry::Sample(s) = &entries[4] else { panic!() };
    assert_eq!(s.value.to_bits(), PARSED_NAN_BITS);
    let Entry::Sample(s) = &entries[5] else { panic!() };
    assert_eq!((s.value, s.timestamp_ms), (f64::NEG_INFINITY, Some(1500)));

    let prom = "# HELP up  Whether up.\n# TYPE up untyped\n  up { job = \"a\" , } 1 -5 \n\n# some comment\nup\t2\n";
    let entries: Vec<_> = TextDecoder::new(prom.as_bytes(), Flavor::Prometheus).collect::<Result<_, _>>().unwrap();
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[1], Entry::Type { family: "up", metric_type: MetricType::Unknown });
    let Entry::Sample(s) = &entries[2] else { panic!() };
    assert_eq!((s.value, s.timestamp_ms), (1.0, Some(-5)));
    assert_eq!(s.labels.iter().collect::<Vec<_>>(), [("job", Cow::Borrowed("a"))]);
    assert_eq!(entries[3], Entry::Comment(" some comment"));
}

// ---------------------------------------------------------------- StatsD

#[derive(Debug, Clone)]
struct StatsdCase {
    name: String,
    kind: StatsdType,
    values: Vec<StatsdOwnedValue>,
    rate: Option<f64>,
    tags: Vec<String>,
    container: Option<String>,
    ts_s: Option<i64>,
}

#[derive(Debug, Clone)]
enum StatsdOwnedValue {
    Number(f64),
    Delta(f64),
    Member(String),
}

fn statsd_case() -> impl Strategy<Value = StatsdCase> {
    let kind = prop_oneof![
        Just(StatsdType::Counter),
        Just(StatsdType::Gauge),
        Just(StatsdType::Timer),
        Just(StatsdType::Histogram),
        Just(StatsdType::Set),
        Just(StatsdType::Distribution),
    ];
    (
        "[a-zA-Z][a-zA-Z0-9._-]{0,15}",
        kind,
        proptest::collection::vec((value(), any::<bool>(), "[a-z0-9]{1,6}"), 1..4),
        proptest::option::of((1u32..=1000).prop_map(|r| r as f64 / 1000.0)),
        proptest::collection::vec("[a-z][a-z0-9_.:/-]{0,10}", 0..4),
        proptest::option::of("[a-f0-9]{1,12}"),
        proptest::option::of(0i64..4_000_000_000),
    )
        .prop_map(|(name, kind, raw, rate, tags, container, ts_s)| {
            let values = match kind {
                StatsdType::Set => vec![StatsdOwnedValue::Member(raw[0].2.clone())],
                StatsdType::Gauge => raw
                    .iter()
                    .map(|(v, delta, _)| {
                        if *delta && !v.is_nan() {
                            StatsdOwnedValue::Delta(*v)
                        } else if v.is_nan() || (v.is_finite() && !v.is_sign_negative()) {
                            StatsdOwnedValue::Number(*v)
                        } else {
                            StatsdOwnedValue::Number(v.abs().min(f64::MAX))
                        }
                    })
                    .collect(),
                _ => raw.iter().map(|(v, _, _)| StatsdOwnedValue::Number(*v)).collect(),
            };
            StatsdCase { name, kind, values, rate, tags, container, ts_s }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn statsd_round_trip(cases in proptest::collection::vec(statsd_case(), 1..6)) {
        let mut out = Vec::new();
        for c in &cases {
            let values: Vec<StatsdValue<'_>> = c
                .values
                .iter()
                .map(|v| match v {
                    StatsdOwnedValue::Number(x) => StatsdValue::Number(*x),
                    StatsdOwnedValue::Delta(x) => StatsdValue::GaugeDelta(*x),
                    StatsdOwnedValue::Member(s) => StatsdValue::SetMember(s),
                })
                .collect();
            let tags: Vec<&str> = c.tags.iter().map(String::as_str).collect();
            let m = StatsdMetric {
                name: &c.name,
                kind: c.kind,
                values: &values,
                sample_rate: c.rate,
                tags: &tags,
                container_id: c.container.as_deref(),
                timestamp_ms: c.ts_s.map(|s| s * 1000),
            };
            statsd::write_line(&mut out, &m).map_err(|e| TestCaseError::fail(format!("{e}: {m:?}")))?;
        }
        let lines: Vec<_> = StatsdDecoder::new(&out)
            .collect::<Result<_, _>>()
            .map_err(|e| TestCaseError::fail(format!("{e} in {:?}", String::from_utf8_lossy(&out))))?;
        prop_assert_eq!(lines.len(), cases.len());
        for (c, l) in cases.iter().zip(&lines) {
            prop_assert_eq!(&c.name, l.name);
            prop_assert_eq!(c.kind, l.kind);
            prop_assert_eq!(c.rate, l.sample_rate);
            prop_assert_eq!(c.tags.iter().map(String::as_str).collect::<Vec<_>>(), l.tags().collect::<Vec<_>>());
            prop_assert_eq!(c.container.as_deref(), l.container_id);
            prop_assert_eq!(c.ts_s.map(|s| s * 1000), l.timestamp_ms);
            let got: Vec<StatsdValue<'_>> = l.values().collect();
            prop_assert_eq!(got.len(), c.values.len());
            for (want, got) in c.values.iter().zip(&got) {
                match (want, got) {
                    (StatsdOwnedValue::Number(a), StatsdValue::Number(b)) => prop_assert_eq!(expected_bits(*a), b.to_bits()),
                    (StatsdOwnedValue::Delta(a), StatsdValue::GaugeDelta(b)) => prop_assert_eq!(expected_bits(*a), b.to_bits()),
                    (StatsdOwnedValue::Member(a), StatsdValue::SetMember(b)) => prop_assert_eq!(a, b),
                    _ => prop_assert!(false, "{:?} became {:?}", want, got),
                }
            }
            prop_assert!(l.to_labels().is_ok());
        }
    }

    #[test]
    fn statsd_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        for l in StatsdDecoder::new(&data).flatten() {
            let _ = l.values().count();
            let _ = l.to_labels();
        }
    }

    #[test]
    fn statsd_never_panics_on_near_valid_text(data in "[a-z.:|@#,0-9+\\-cgmshdT\n_{}]{0,120}") {
        for l in StatsdDecoder::new(data.as_bytes()).flatten() {
            let _ = l.values().count();
            let _ = l.to_labels();
        }
    }
}

// ---------------------------------------------------------------- JSON

fn json_series() -> impl Strategy<Value = JsonSeries<'static>> {
    (
        "[a-zA-Z][a-zA-Z0-9._\"\\\\é-]{0,15}",
        proptest::option::of(prop_oneof![
            Just(JsonMetricKind::Gauge),
            Just(JsonMetricKind::Count),
            Just(JsonMetricKind::Rate),
            Just(JsonMetricKind::Unspecified)
        ]),
        proptest::collection::vec(
            (-100_000_000_000_000i64..100_000_000_000_000, any::<f64>().prop_filter("finite", |v| v.is_finite())),
            0..5,
        ),
        proptest::collection::vec("[a-z][a-z0-9_.:\"/-]{0,10}", 0..4),
        proptest::option::of("[a-z0-9.-]{1,10}"),
        proptest::option::of(1u32..3600),
    )
        .prop_map(|(metric, kind, points, tags, host, interval)| JsonSeries {
            metric: metric.into(),
            kind,
            points: points.into_iter().map(|(timestamp_ms, value)| JsonPoint { timestamp_ms, value }).collect(),
            tags: tags.into_iter().map(Cow::Owned).collect(),
            host: host.map(Cow::Owned),
            interval: interval.map(f64::from),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn json_round_trip(series in proptest::collection::vec(json_series(), 0..5)) {
        let payload = SeriesPayload { series };
        let mut out = Vec::new();
        json::encode(&payload, &mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back = json::decode(&out).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&out))))?;
        prop_assert_eq!(back.series.len(), payload.series.len());
        for (a, b) in payload.series.iter().zip(&back.series) {
            prop_assert_eq!(&a.metric, &b.metric);
            prop_assert_eq!(a.kind, b.kind);
            prop_assert_eq!(&a.tags, &b.tags);
            prop_assert_eq!(&a.host, &b.host);
            prop_assert_eq!(a.interval, b.interval);
            prop_assert_eq!(a.points.len(), b.points.len());
            for (p, q) in a.points.iter().zip(&b.points) {
                prop_assert_eq!(p.timestamp_ms, q.timestamp_ms);
                prop_assert_eq!(p.value.to_bits(), q.value.to_bits());
            }
        }
    }

    #[test]
    fn json_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(p) = json::decode(&data) {
            for s in &p.series {
                let _ = s.to_labels();
            }
        }
    }

    #[test]
    fn json_never_panics_on_near_valid_text(data in "[\\[\\]{}\":,a-z0-9.e-]{0,120}") {
        let text = format!("{{\"series\":[{data}");
        let _ = json::decode(text.as_bytes());
        let _ = json::decode(data.as_bytes());
    }
}

#[test]
fn json_seed_decodes() {
    let body = br#"{"series":[{"metric":"http.request.duration","type":"gauge","points":[[1681200000,45.2],[1681200001.25,46]],"tags":["service:api-gateway","env:production"]}]}"#;
    let p = json::decode(body).unwrap();
    assert_eq!(p.series[0].points[1], JsonPoint { timestamp_ms: 1_681_200_001_250, value: 46.0 });
    assert_eq!(p.series[0].metric_type(), MetricType::Gauge);
    assert!(matches!(p.series[0].metric, Cow::Borrowed(_)));
}

// ---------------------------------------------------------------- InfluxDB

#[derive(Debug, Clone)]
enum OwnedField {
    Float(f64),
    Int(i64),
    UInt(u64),
    Bool(bool),
    Str(String),
}

fn influx_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![4 => "[a-zA-Z0-9_.]", 1 => Just(" ".to_string()), 1 => Just(",".into()), 1 => Just("=".into()), 1 => Just("é".into()), 1 => Just("\"".into())], 1..8)
        .prop_map(|v| v.concat())
        .prop_filter("no leading #", |s| !s.starts_with('#'))
}

fn influx_field() -> impl Strategy<Value = OwnedField> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |v| v.is_finite()).prop_map(OwnedField::Float),
        any::<i64>().prop_map(OwnedField::Int),
        any::<u64>().prop_map(OwnedField::UInt),
        any::<bool>().prop_map(OwnedField::Bool),
        "[a-z \"\\\\,=é]{0,10}".prop_map(OwnedField::Str),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn influx_round_trip(
        measurement in influx_text(),
        tags in proptest::collection::vec((influx_text(), influx_text()), 0..4),
        fields in proptest::collection::vec((influx_text(), influx_field()), 1..5),
        ts in proptest::option::of(-9_000_000_000_000i64..9_000_000_000_000),
    ) {
        let inputs: Vec<(&str, FieldInput<'_>)> = fields
            .iter()
            .map(|(k, v)| {
                (k.as_str(), match v {
                    OwnedField::Float(f) => FieldInput::Float(*f),
                    OwnedField::Int(i) => FieldInput::Integer(*i),
                    OwnedField::UInt(u) => FieldInput::UInteger(*u),
                    OwnedField::Bool(b) => FieldInput::Boolean(*b),
                    OwnedField::Str(s) => FieldInput::String(s),
                })
            })
            .collect();
        let mut out = Vec::new();
        influx::write_line(&mut out, &measurement, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())), &inputs, ts)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let l = InfluxDecoder::new(&out)
            .next()
            .ok_or_else(|| TestCaseError::fail("no line"))?
            .map_err(|e| TestCaseError::fail(format!("{e} in {:?}", String::from_utf8_lossy(&out))))?;
        prop_assert_eq!(l.measurement.unescape(), measurement.as_str());
        let got_tags: Vec<(String, String)> = l.tags().map(|(k, v)| (k.unescape().into_owned(), v.unescape().into_owned())).collect();
        prop_assert_eq!(&got_tags, &tags);
        let got: Vec<_> = l.fields().collect();
        prop_assert_eq!(got.len(), fields.len());
        for ((k, want), (gk, gv)) in fields.iter().zip(&got) {
            prop_assert_eq!(k.as_str(), gk.unescape());
            match (want, gv) {
                (OwnedField::Float(a), FieldValue::Float(b)) => prop_assert_eq!(a.to_bits(), b.to_bits()),
                (OwnedField::Int(a), FieldValue::Integer(b)) => prop_assert_eq!(a, b),
                (OwnedField::UInt(a), FieldValue::UInteger(b)) => prop_assert_eq!(a, b),
                (OwnedField::Bool(a), FieldValue::Boolean(b)) => prop_assert_eq!(a, b),
                (OwnedField::Str(a), FieldValue::String(b)) => prop_assert_eq!(a.as_str(), b.unescape()),
                _ => prop_assert!(false, "{:?} became {:?}", want, gv),
            }
        }
        prop_assert_eq!(ts, l.timestamp_ms);
        prop_assert_eq!(l.samples().count(), fields.len());
    }

    #[test]
    fn influx_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        for l in InfluxDecoder::new(&data).flatten() {
            let _ = l.tags().count();
            let _ = l.fields().count();
            let _ = l.samples().count();
        }
    }

    #[test]
    fn influx_never_panics_on_near_valid_text(data in "[a-z,= \"\\\\0-9.i\nTtu#-]{0,120}") {
        for l in InfluxDecoder::new(data.as_bytes()).flatten() {
            let _ = l.measurement.unescape();
            let _ = l.tags().count();
            let _ = l.fields().count();
            let _ = l.samples().count();
        }
    }
}

#[test]
fn influx_seed_and_errors() {
    let l =
        InfluxDecoder::new(b"measurement,tag=v field=1.5,other=2i,b=true 1681200000000000000").next().unwrap().unwrap();
    assert_eq!(l.timestamp_ms, Some(1_681_200_000_000));
    assert_eq!(l.fields().count(), 3);
    let e = InfluxDecoder::new(b"ok v=1\nbad,t=1").find_map(Result::err).unwrap();
    assert_eq!((e.line, e.column, e.kind), (2, 8, InfluxErrorKind::MissingFields));
}
