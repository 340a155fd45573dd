//! The `$all` filters of the protocol: a regex or prefixes, on stream names or event types.

use tonic::Status;

use crate::log::StoredEvent;
use crate::proto::event_store::client::streams::read_req::options::{
    FilterOptions, filter_options,
};

/// How many events a filtered subscription scans between two checkpoints when the client asks
/// for the default window (the real server's default is 32).
const DEFAULT_CHECKPOINT_WINDOW: u32 = 32;

#[derive(Debug)]
pub(crate) struct EventFilter {
    on_stream_name: bool,
    regex: Option<regex_lite::Regex>,
    prefixes: Vec<String>,
    /// Scanned events between two checkpoints.
    pub checkpoint_every: u64,
}

impl EventFilter {
    pub fn from_proto(options: FilterOptions) -> Result<Self, Status> {
        let (on_stream_name, expression) = match options.filter {
            Some(filter_options::Filter::StreamIdentifier(e)) => (true, e),
            Some(filter_options::Filter::EventType(e)) => (false, e),
            None => return Err(Status::invalid_argument("filter without expression")),
        };
        let regex = if expression.regex.is_empty() {
            None
        } else {
            Some(
                regex_lite::Regex::new(&expression.regex)
                    .map_err(|e| Status::invalid_argument(format!("invalid filter regex: {e}")))?,
            )
        };
        let window = match options.window {
            Some(filter_options::Window::Max(max)) if max > 0 => max,
            _ => DEFAULT_CHECKPOINT_WINDOW,
        };
        let multiplier = options.checkpoint_interval_multiplier.max(1);
        Ok(Self {
            on_stream_name,
            regex,
            prefixes: expression.prefix,
            checkpoint_every: u64::from(window) * u64::from(multiplier),
        })
    }

    pub fn matches(&self, event: &StoredEvent) -> bool {
        let subject = if self.on_stream_name {
            event.stream.as_str()
        } else {
            event.event_type.as_str()
        };
        let by_regex = self.regex.as_ref().is_none_or(|r| r.is_match(subject));
        let by_prefix =
            self.prefixes.is_empty() || self.prefixes.iter().any(|p| subject.starts_with(p));
        by_regex && by_prefix
    }
}
