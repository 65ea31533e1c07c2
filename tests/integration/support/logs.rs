//! What the product logs, captured for asserting on it.

/// Every log line written while it is installed, for asserting on what the product logs.
/// Install with `tracing::subscriber::set_default(capture.subscriber())` on a current-thread
/// runtime, so that every task of the test logs through it.
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// JSON lines as the Lambda functions write them, every level, every crate except the
    /// emulator (which is not part of the product).
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + use<> {
        use tracing_subscriber::layer::SubscriberExt;
        // While a single dispatcher exists, tracing decides whether a log statement is
        // enabled (once, for good) by asking the *current thread's* dispatcher: a statement
        // first reached by another test's thread would stay disabled for this capture too.
        // A second, idle dispatcher that lives as long as the test binary makes tracing ask
        // every dispatcher instead.
        static SECOND_DISPATCHER: std::sync::OnceLock<tracing::Dispatch> =
            std::sync::OnceLock::new();
        SECOND_DISPATCHER
            .get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        let filter = tracing_subscriber::filter::Targets::new()
            .with_default(tracing::Level::TRACE)
            .with_target("cdf_emulator", tracing::level_filters::LevelFilter::OFF);
        tracing_subscriber::registry().with(filter).with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_writer(self.clone()),
        )
    }

    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
