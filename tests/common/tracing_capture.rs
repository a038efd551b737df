//! A `tracing` subscriber that records every event as one text line
//! (`target message key=value ...`), for tests that check what is emitted.
#![cfg(feature = "tracing")]

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, Once};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records every event, one per line; clones share the log.
#[derive(Clone)]
pub struct CapturingSubscriber(pub Arc<Mutex<String>>);

impl Default for CapturingSubscriber {
    /// A new, empty log. Installs `InterestKeeper` as the global default
    /// first, once per test binary.
    fn default() -> Self {
        static KEEPER: Once = Once::new();
        KEEPER.call_once(|| {
            let _ = tracing::subscriber::set_global_default(InterestKeeper);
        });
        CapturingSubscriber(Arc::default())
    }
}

/// A global subscriber that drops every event but is interested in all of
/// them. `tracing` caches each callsite's interest process-wide, computed
/// against the default of whichever thread reaches it first: without this,
/// a test thread with no subscriber could cache "never" for a callsite
/// another thread's `CapturingSubscriber` waits to see.
struct InterestKeeper;

impl Subscriber for InterestKeeper {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl CapturingSubscriber {
    /// Everything recorded so far.
    pub fn log(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

struct LineVisitor<'a>(&'a mut String);

impl Visit for LineVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl Subscriber for CapturingSubscriber {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = event.metadata().target().to_string();
        event.record(&mut LineVisitor(&mut line));
        let mut all = self.0.lock().unwrap();
        all.push_str(&line);
        all.push('\n');
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
