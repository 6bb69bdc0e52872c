//! The sources that run beside the HTTP server (cargo feature `server`): the UDP StatsD
//! listener ([`statsd`](crate::statsd)) and the scrape manager ([`scrape`](crate::scrape)),
//! started from the configuration and stopped together.
//!
//! [`server::serve_blocking`](crate::server::serve_blocking) (what `--serve` runs) starts them
//! before it accepts requests and stops them, with a last StatsD flush, before it returns;
//! [`server::serve`](crate::server::serve) does not start them (embed [`Sources`] yourself).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::pipeline::Pipeline;
use crate::scrape::ScrapeManager;
use crate::statsd::StatsdSource;

/// Errors starting the sources.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The StatsD address cannot be bound.
    #[error("cannot listen for StatsD on udp {addr}: {source}")]
    StatsdBind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The running sources.
#[derive(Debug)]
pub struct Sources {
    stop: tokio::sync::watch::Sender<bool>,
    statsd: Option<StatsdSource>,
    scrape: Option<ScrapeManager>,
}

impl Sources {
    /// Starts what the pipeline's configuration enables: StatsD when `statsd.enabled` and
    /// `statsd.listen` is not empty, the scrape manager when `scrape.jobs` is not empty. Must
    /// be called on a tokio runtime.
    ///
    /// # Errors
    /// [`SourceError::StatsdBind`].
    pub async fn start(p: Arc<Pipeline>) -> Result<Sources, SourceError> {
        let (stop, rx) = tokio::sync::watch::channel(false);
        let cfg = p.config().clone();
        let statsd = if cfg.statsd.enabled && !cfg.statsd.listen.is_empty() {
            Some(
                StatsdSource::start(p.clone(), rx.clone())
                    .await
                    .map_err(|source| SourceError::StatsdBind { addr: cfg.statsd.listen.clone(), source })?,
            )
        } else {
            None
        };
        let scrape = (!cfg.scrape.jobs.is_empty()).then(|| ScrapeManager::start(p.clone(), rx));
        Ok(Sources { stop, statsd, scrape })
    }

    /// The StatsD socket's address, when the source runs.
    pub fn statsd_addr(&self) -> Option<SocketAddr> {
        self.statsd.as_ref().map(StatsdSource::local_addr)
    }

    /// The scrape manager, when it runs.
    pub fn scrape(&self) -> Option<&ScrapeManager> {
        self.scrape.as_ref()
    }

    /// Stops every source and waits for it: StatsD flushes what it aggregated (waiting for
    /// queue room), the scrape manager writes stale markers for its targets' series.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Some(s) = self.statsd {
            s.join().await;
        }
        if let Some(s) = self.scrape {
            s.join().await;
        }
    }
}
