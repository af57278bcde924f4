//! Prometheus metrics: acks by platform and outcome, the ack-latency histogram, SSE subscribers
//! and the streams cut off for not reading, and queue depth by status (kept current by `admission::refresh_counts`, never read at scrape
//! time).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub acks: IntCounterVec,
    pub ack_latency: HistogramVec,
    pub sse_subscribers: IntGauge,
    /// Event streams cut off because their client stopped reading.
    pub sse_cut_off: IntCounter,
    pub queue_depth: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let acks = IntCounterVec::new(
            Opts::new(
                "sentinel_ingress_total",
                "Webhooks answered, by platform and outcome",
            ),
            &["platform", "outcome"],
        )
        .expect("valid metric");
        let ack_latency = HistogramVec::new(
            HistogramOpts::new(
                "sentinel_ingress_ack_seconds",
                "Time from request to answer for webhooks",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["platform"],
        )
        .expect("valid metric");
        let sse_subscribers =
            IntGauge::new("sentinel_sse_subscribers", "Open SSE streams").expect("valid metric");
        let sse_cut_off = IntCounter::new(
            "sentinel_sse_cut_off_total",
            "SSE streams cut off because their client stopped reading (SENTINEL_SSE_MAX_BUFFER_BYTES)",
        )
        .expect("valid metric");
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "sentinel_jobs",
                "Jobs by status: queued every 2 s, the others every 30 s",
            ),
            &["status"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(acks.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(ack_latency.clone()),
            Box::new(sse_subscribers.clone()),
            Box::new(sse_cut_off.clone()),
            Box::new(queue_depth.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric registered once");
        }
        Self {
            registry,
            acks,
            ack_latency,
            sse_subscribers,
            sse_cut_off,
            queue_depth,
        }
    }

    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
