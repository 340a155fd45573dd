//! The `event_store.client.streams.Streams` service: appends, reads, catch-up subscriptions.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status, Streaming};

use crate::State;
use crate::filter::EventFilter;
use crate::log::{AppendOutcome, Expected, Proposed, StoredEvent};
use crate::proto::event_store::client::streams::{
    AppendReq, AppendResp, BatchAppendReq, BatchAppendResp, DeleteReq, DeleteResp, ReadReq,
    ReadResp, TombstoneReq, TombstoneResp, append_req, append_resp, read_req, read_resp,
    streams_server::Streams,
};
use crate::proto::event_store::client::{StreamIdentifier, Uuid as ProtoUuid};

/// The real server's default maximum append size (data, metadata and twice the event type's
/// UTF-16 length, summed over the append's events), 1 MiB.
pub const MAX_APPEND_SIZE: usize = 1024 * 1024;

/// Events a subscription copies out of the log per lock.
const SUBSCRIPTION_BATCH: usize = 256;

/// Messages buffered per read or subscription before the server waits for the client.
const RESPONSE_BUFFER: usize = 64;

type ResponseStream = Pin<Box<dyn Stream<Item = Result<ReadResp, Status>> + Send>>;

#[derive(Debug, Clone)]
pub(crate) struct StreamsService {
    pub state: Arc<State>,
}

fn invalid(message: &str) -> Status {
    Status::invalid_argument(message.to_owned())
}

fn stream_name(identifier: Option<StreamIdentifier>) -> Result<String, Status> {
    let identifier = identifier.ok_or_else(|| invalid("missing stream identifier"))?;
    String::from_utf8(identifier.stream_name.to_vec())
        .map_err(|_| invalid("stream name is not UTF-8"))
}

fn parse_uuid(id: Option<ProtoUuid>) -> Result<::uuid::Uuid, Status> {
    use crate::proto::event_store::client::uuid::Value;
    match id.and_then(|id| id.value) {
        Some(Value::String(s)) => s.parse().map_err(|_| invalid("invalid event id")),
        Some(Value::Structured(s)) => {
            let high = u128::from(s.most_significant_bits as u64);
            let low = u128::from(s.least_significant_bits as u64);
            Ok(::uuid::Uuid::from_u128((high << 64) | low))
        }
        None => Err(invalid("missing event id")),
    }
}

fn proto_uuid(id: ::uuid::Uuid, structured: bool) -> ProtoUuid {
    use crate::proto::event_store::client::uuid::{Structured, Value};
    let value = if structured {
        let n = id.as_u128();
        Value::Structured(Structured {
            most_significant_bits: (n >> 64) as u64 as i64,
            least_significant_bits: n as u64 as i64,
        })
    } else {
        Value::String(id.to_string())
    };
    ProtoUuid { value: Some(value) }
}

fn event_message(event: &StoredEvent, structured_ids: bool) -> ReadResp {
    use read_resp::read_event::{Position, RecordedEvent};
    let mut metadata = HashMap::new();
    metadata.insert("type".to_owned(), event.event_type.clone());
    // The server keeps only a "is JSON" flag, not the content type the writer sent.
    let content_type = if event.is_json {
        "application/json"
    } else {
        "application/octet-stream"
    };
    metadata.insert("content-type".to_owned(), content_type.to_owned());
    metadata.insert("created".to_owned(), event.created_ticks.to_string());
    ReadResp {
        content: Some(read_resp::Content::Event(read_resp::ReadEvent {
            event: Some(RecordedEvent {
                id: Some(proto_uuid(event.id, structured_ids)),
                stream_identifier: Some(StreamIdentifier {
                    stream_name: event.stream.clone().into(),
                }),
                stream_revision: event.revision,
                prepare_position: event.prepare,
                commit_position: event.commit,
                metadata,
                custom_metadata: event.custom_metadata.clone(),
                data: event.data.clone(),
            }),
            link: None,
            position: Some(Position::CommitPosition(event.commit)),
        })),
    }
}

fn content(content: read_resp::Content) -> ReadResp {
    ReadResp {
        content: Some(content),
    }
}

fn not_leader(host: &str, port: u16) -> Status {
    let mut metadata = MetadataMap::new();
    metadata.insert("exception", MetadataValue::from_static("not-leader"));
    if let Ok(host) = host.parse() {
        metadata.insert("leader-endpoint-host", host);
    }
    metadata.insert("leader-endpoint-port", MetadataValue::from(u32::from(port)));
    Status::with_metadata(Code::NotFound, "Leader info available", metadata)
}

impl StreamsService {
    fn read_stream(
        &self,
        options: read_req::options::StreamOptions,
        backwards: bool,
        count: u64,
        structured_ids: bool,
        compatibility: u32,
    ) -> Result<Vec<ReadResp>, Status> {
        use read_req::options::stream_options::RevisionOption;
        let stream = stream_name(options.stream_identifier)?;
        let log = self.state.log.lock().unwrap_or_else(|p| p.into_inner());
        let Some(events) = log.stream(&stream) else {
            return Ok(vec![content(read_resp::Content::StreamNotFound(
                read_resp::StreamNotFound {
                    stream_identifier: Some(StreamIdentifier {
                        stream_name: stream.into(),
                    }),
                },
            ))]);
        };
        let last = events.len() as u64 - 1;
        // Events below the stream's `$tb` are not read; the stream and its last revision stay.
        let truncate_before = log.truncate_before(&stream);
        let events: Vec<&StoredEvent> = events
            .into_iter()
            .filter(|e| e.revision >= truncate_before)
            .collect();
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let selected: Vec<&StoredEvent> = match (options.revision_option, backwards) {
            (Some(RevisionOption::Start(())), false) | (None, false) => {
                events.into_iter().take(count).collect()
            }
            (Some(RevisionOption::Revision(r)), false) => events
                .into_iter()
                .skip_while(|e| e.revision < r)
                .take(count)
                .collect(),
            (Some(RevisionOption::End(())), false) => Vec::new(),
            (Some(RevisionOption::End(())), true) | (None, true) => {
                events.into_iter().rev().take(count).collect()
            }
            (Some(RevisionOption::Revision(r)), true) => events
                .into_iter()
                .rev()
                .skip_while(|e| e.revision > r)
                .take(count)
                .collect(),
            (Some(RevisionOption::Start(())), true) => events.into_iter().take(1).collect(),
        };
        let mut out: Vec<ReadResp> = selected
            .into_iter()
            .map(|e| event_message(e, structured_ids))
            .collect();
        // Newer servers tell where the stream ends; the client skips these messages.
        if compatibility >= 1 {
            out.push(content(read_resp::Content::LastStreamPosition(last)));
        }
        Ok(out)
    }

    fn read_all(
        &self,
        option: Option<read_req::options::all_options::AllOption>,
        backwards: bool,
        count: u64,
        filter: Option<&EventFilter>,
        structured_ids: bool,
    ) -> Vec<ReadResp> {
        use read_req::options::all_options::AllOption;
        let log = self.state.log.lock().unwrap_or_else(|p| p.into_inner());
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let matches = |e: &&StoredEvent| filter.is_none_or(|f| f.matches(e));
        let indices: Box<dyn Iterator<Item = usize>> = match (option, backwards) {
            (Some(AllOption::Start(())) | None, false) => Box::new(0..log.len()),
            (Some(AllOption::Position(p)), false) => Box::new(
                log.first_index_at_or_after((p.commit_position, p.prepare_position))..log.len(),
            ),
            (Some(AllOption::End(())), false) => Box::new(std::iter::empty()),
            (Some(AllOption::End(())) | None, true) => Box::new((0..log.len()).rev()),
            (Some(AllOption::Position(p)), true) => Box::new(
                (0..log.first_index_at_or_after((p.commit_position, p.prepare_position))).rev(),
            ),
            (Some(AllOption::Start(())), true) => Box::new(std::iter::empty()),
        };
        indices
            .filter_map(|i| log.get(i))
            .filter(matches)
            .take(count)
            .map(|e| event_message(e, structured_ids))
            .collect()
    }

    fn subscribe_all(
        &self,
        option: Option<read_req::options::all_options::AllOption>,
        filter: Option<EventFilter>,
        structured_ids: bool,
    ) -> ResponseStream {
        use read_req::options::all_options::AllOption;
        let (tx, rx) = mpsc::channel(RESPONSE_BUFFER);
        let state = Arc::clone(&self.state);
        let mut kill = state.kill_subscriptions.subscribe();
        let mut appended = state.appended.subscribe();
        let mut next = {
            let log = state.log.lock().unwrap_or_else(|p| p.into_inner());
            match option {
                Some(AllOption::Start(())) | None => 0,
                Some(AllOption::Position(p)) => {
                    log.first_index_after((p.commit_position, p.prepare_position))
                }
                Some(AllOption::End(())) => log.len(),
            }
        };
        let subscription_id = ::uuid::Uuid::new_v4().to_string();
        tokio::spawn(async move {
            let confirmation = content(read_resp::Content::Confirmation(
                read_resp::SubscriptionConfirmation { subscription_id },
            ));
            if tx.send(Ok(confirmation)).await.is_err() {
                return;
            }
            let mut caught_up = false;
            let mut scanned = 0u64;
            loop {
                if kill.has_changed().unwrap_or(true) {
                    let _ = tx
                        .send(Err(Status::unavailable(
                            "subscription dropped by the server",
                        )))
                        .await;
                    return;
                }
                appended.borrow_and_update();
                let batch: Vec<StoredEvent> = {
                    let log = state.log.lock().unwrap_or_else(|p| p.into_inner());
                    (next..log.len().min(next + SUBSCRIPTION_BATCH))
                        .filter_map(|i| log.get(i).cloned())
                        .collect()
                };
                if batch.is_empty() {
                    if !caught_up {
                        caught_up = true;
                        let message = content(read_resp::Content::CaughtUp(read_resp::CaughtUp {}));
                        if tx.send(Ok(message)).await.is_err() {
                            return;
                        }
                    }
                    tokio::select! {
                        changed = appended.changed() => if changed.is_err() { return },
                        _ = kill.changed() => {}
                        () = tx.closed() => return,
                    }
                    continue;
                }
                for event in &batch {
                    next += 1;
                    let message = match &filter {
                        Some(f) if !f.matches(event) => {
                            scanned += 1;
                            if scanned < f.checkpoint_every {
                                continue;
                            }
                            scanned = 0;
                            content(read_resp::Content::Checkpoint(read_resp::Checkpoint {
                                commit_position: event.commit,
                                prepare_position: event.prepare,
                            }))
                        }
                        Some(_) => {
                            scanned += 1;
                            state.subscription_events.fetch_add(1, Ordering::SeqCst);
                            event_message(event, structured_ids)
                        }
                        None => {
                            state.subscription_events.fetch_add(1, Ordering::SeqCst);
                            event_message(event, structured_ids)
                        }
                    };
                    if tx.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Box::pin(ReceiverStream::new(rx))
    }
}

#[tonic::async_trait]
impl Streams for StreamsService {
    type ReadStream = ResponseStream;

    async fn read(&self, request: Request<ReadReq>) -> Result<Response<Self::ReadStream>, Status> {
        use read_req::options::{CountOption, FilterOption, StreamOption, uuid_option};
        let options = request
            .into_inner()
            .options
            .ok_or_else(|| invalid("missing read options"))?;
        let backwards =
            options.read_direction == read_req::options::ReadDirection::Backwards as i32;
        let structured_ids = matches!(
            options.uuid_option.and_then(|u| u.content),
            Some(uuid_option::Content::Structured(()))
        );
        let compatibility = options.control_option.map_or(0, |c| c.compatibility);
        let filter = match options.filter_option {
            Some(FilterOption::Filter(f)) => Some(EventFilter::from_proto(f)?),
            Some(FilterOption::NoFilter(())) | None => None,
        };
        let stream_option = options
            .stream_option
            .ok_or_else(|| invalid("missing stream option"))?;
        let messages = match (stream_option, options.count_option) {
            (StreamOption::All(all), Some(CountOption::Subscription(_))) => {
                if backwards {
                    return Err(invalid("subscriptions read forwards"));
                }
                return Ok(Response::new(self.subscribe_all(
                    all.all_option,
                    filter,
                    structured_ids,
                )));
            }
            (StreamOption::Stream(_), Some(CountOption::Subscription(_))) => {
                return Err(Status::unimplemented(
                    "stream subscriptions are not supported by the test server",
                ));
            }
            (StreamOption::Stream(stream), Some(CountOption::Count(count))) => {
                self.read_stream(stream, backwards, count, structured_ids, compatibility)?
            }
            (StreamOption::All(all), Some(CountOption::Count(count))) => self.read_all(
                all.all_option,
                backwards,
                count,
                filter.as_ref(),
                structured_ids,
            ),
            (_, None) => return Err(invalid("missing count option")),
        };
        let stream = futures::stream::iter(messages.into_iter().map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn append(
        &self,
        request: Request<Streaming<AppendReq>>,
    ) -> Result<Response<AppendResp>, Status> {
        use append_req::options::ExpectedStreamRevision;
        self.state.append_calls.fetch_add(1, Ordering::SeqCst);
        let rejected = self.state.not_leader_rejections.fetch_update(
            Ordering::SeqCst,
            Ordering::SeqCst,
            |n| n.checked_sub(1),
        );
        if rejected.is_ok() {
            return Err(not_leader("127.0.0.1", self.state.port));
        }

        let mut messages = request.into_inner();
        let Some(AppendReq {
            content: Some(append_req::Content::Options(options)),
        }) = messages.message().await?
        else {
            return Err(invalid("an append starts with its options"));
        };
        let stream = stream_name(options.stream_identifier)?;
        let expected = match options.expected_stream_revision {
            Some(ExpectedStreamRevision::Revision(r)) => Expected::Revision(r),
            Some(ExpectedStreamRevision::NoStream(())) => Expected::NoStream,
            Some(ExpectedStreamRevision::Any(())) => Expected::Any,
            Some(ExpectedStreamRevision::StreamExists(())) => Expected::StreamExists,
            None => return Err(invalid("missing expected stream revision")),
        };

        let mut events = Vec::new();
        let mut size = 0usize;
        while let Some(message) = messages.message().await? {
            let Some(append_req::Content::ProposedMessage(m)) = message.content else {
                return Err(invalid("expected a proposed message"));
            };
            let id = parse_uuid(m.id)?;
            let event_type = m
                .metadata
                .get("type")
                .cloned()
                .ok_or_else(|| invalid("missing event type"))?;
            let content_type = m
                .metadata
                .get("content-type")
                .ok_or_else(|| invalid("missing content type"))?;
            // The real server's `Event.SizeOnDisk`: the event type counts in UTF-16.
            size += m.data.len() + m.custom_metadata.len() + event_type.encode_utf16().count() * 2;
            if size > MAX_APPEND_SIZE {
                let mut metadata = MetadataMap::new();
                metadata.insert(
                    "exception",
                    MetadataValue::from_static("maximum-append-size-exceeded"),
                );
                return Err(Status::with_metadata(
                    Code::InvalidArgument,
                    format!("Maximum Append Size of {MAX_APPEND_SIZE} Exceeded."),
                    metadata,
                ));
            }
            events.push(Proposed {
                id,
                is_json: content_type == "application/json",
                event_type,
                custom_metadata: m.custom_metadata,
                data: m.data,
            });
        }

        let outcome = if events.is_empty() {
            return Err(invalid("the test server does not take empty appends"));
        } else {
            let mut log = self.state.log.lock().unwrap_or_else(|p| p.into_inner());
            let outcome = log.append(&stream, expected, events, crate::log::now_ticks());
            if matches!(outcome, AppendOutcome::Written { .. }) {
                self.state.appended.send_replace(log.len());
            }
            outcome
        };

        let result = match outcome {
            AppendOutcome::Written { revision, position } => {
                use append_resp::success::{CurrentRevisionOption, PositionOption};
                append_resp::Result::Success(append_resp::Success {
                    current_revision_option: Some(CurrentRevisionOption::CurrentRevision(revision)),
                    // Like the real server (its request manager answers with the commit
                    // position in both fields), not the last event's (commit, prepare): for
                    // an append of several events it is the first event's position.
                    position_option: Some(PositionOption::Position(append_resp::Position {
                        commit_position: position.0,
                        prepare_position: position.0,
                    })),
                })
            }
            AppendOutcome::Idempotent { revision } => {
                use append_resp::success::{CurrentRevisionOption, PositionOption};
                append_resp::Result::Success(append_resp::Success {
                    current_revision_option: Some(CurrentRevisionOption::CurrentRevision(revision)),
                    position_option: Some(PositionOption::NoPosition(())),
                })
            }
            AppendOutcome::WrongExpectedVersion { current } => {
                use append_resp::wrong_expected_version::{
                    CurrentRevisionOption, ExpectedRevisionOption,
                };
                append_resp::Result::WrongExpectedVersion(append_resp::WrongExpectedVersion {
                    current_revision_option: Some(match current {
                        Some(r) => CurrentRevisionOption::CurrentRevision(r),
                        None => CurrentRevisionOption::CurrentNoStream(()),
                    }),
                    expected_revision_option: Some(match expected {
                        Expected::Revision(r) => ExpectedRevisionOption::ExpectedRevision(r),
                        Expected::NoStream => ExpectedRevisionOption::ExpectedNoStream(()),
                        Expected::Any => ExpectedRevisionOption::ExpectedAny(()),
                        Expected::StreamExists => ExpectedRevisionOption::ExpectedStreamExists(()),
                    }),
                    ..Default::default()
                })
            }
        };
        Ok(Response::new(AppendResp {
            result: Some(result),
        }))
    }

    async fn delete(&self, _: Request<DeleteReq>) -> Result<Response<DeleteResp>, Status> {
        Err(Status::unimplemented(
            "delete is not supported by the test server",
        ))
    }

    async fn tombstone(&self, _: Request<TombstoneReq>) -> Result<Response<TombstoneResp>, Status> {
        Err(Status::unimplemented(
            "tombstone is not supported by the test server",
        ))
    }

    type BatchAppendStream = Pin<Box<dyn Stream<Item = Result<BatchAppendResp, Status>> + Send>>;

    async fn batch_append(
        &self,
        _: Request<Streaming<BatchAppendReq>>,
    ) -> Result<Response<Self::BatchAppendStream>, Status> {
        Err(Status::unimplemented(
            "batch append is not supported by the test server",
        ))
    }
}
