//! Lifecycle events for the `tracing` feature: a thin macro over `tracing`
//! that type-checks its fields but expands to nothing without the feature.
//! Events carry program names, pids, mechanisms and durations; never argv or env values.

/// Emits one `processkit` event: `trace_event!(level, "message", key = %value, key = ?value)`.
/// `%` records a value with `Display`, `?` with `Debug`.
#[cfg(feature = "tracing")]
macro_rules! trace_event {
    ($level:ident, $message:literal $(, $key:ident = $sigil:tt $value:expr)* $(,)?) => {
        ::tracing::$level!(target: "processkit", $($key = $sigil $value,)* $message)
    };
}

/// Without the `tracing` feature the fields are only type-checked, never evaluated.
#[cfg(not(feature = "tracing"))]
macro_rules! trace_event {
    ($level:ident, $message:literal $(, $key:ident = $sigil:tt $value:expr)* $(,)?) => {
        if false {
            $(let _ = &$value;)*
        }
    };
}

pub(crate) use trace_event;
