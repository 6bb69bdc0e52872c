//! Wire formats: streaming decoders and encoders.
//!
//! Being filled: Prometheus text 0.0.4, OpenMetrics 1.0, StatsD/DogStatsD, JSON series and
//! InfluxDB line protocol.
