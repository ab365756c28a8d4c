//! `GET /v1/ws`: one WebSocket carrying requests (search, get, upsert, delete) and
//! event subscriptions, for clients that want both on one connection.
//!
//! Key choices:
//! - The key is checked once, at the upgrade, by the same middleware as every `/v1`
//!   route (it needs `read`); each request then checks the key's scopes again (`write`
//!   for upsert and delete). Requests run the same engine calls as the REST handlers,
//!   one at a time per connection, answered in order.
//! - Everything sent goes through one bounded queue (`--ws-queue` messages) drained by
//!   a writer task. A client that lets it fill up is closed with code 1008 and a
//!   reason instead of being buffered for; a client that stops reading TCP stalls only
//!   its own writer, which the close request still interrupts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arrwdb_core::api;
use arrwdb_core::{Command, Outcome, Query, QueryResponse};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{Delivery, Filter, bus, parse_event_id};
use crate::auth::{Caller, Scope};
use crate::error::ApiError;
use crate::http::AppState;

/// The route, as the slow-query log names it.
const WS_ROUTE: &str = "/v1/ws";

/// Subscriptions one connection may hold at once.
const MAX_SUBSCRIPTIONS: usize = 64;

/// `GET /v1/ws`: upgrades to a WebSocket session.
pub async fn upgrade(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    bus().configure(&state.events);
    match ws {
        Ok(ws) => ws
            .max_message_size(state.max_body_bytes)
            .on_upgrade(move |socket| session(socket, state, caller)),
        Err(rejection) => {
            ApiError::new(rejection.status(), "invalid", rejection.body_text()).into_response()
        }
    }
}

/// Why the writer must close the connection: code and reason.
type CloseRequest = Option<(u16, String)>;

/// The sending side of a session: the bounded queue and the close request.
#[derive(Debug, Clone)]
struct Outbox {
    tx: mpsc::Sender<Message>,
    close: watch::Sender<CloseRequest>,
    capacity: usize,
}

impl Outbox {
    /// Queues `text`; a full queue closes the connection. Returns whether it was queued.
    fn send(&self, text: String) -> bool {
        match self.tx.try_send(Message::Text(text.into())) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(
                    close_code::POLICY,
                    format!(
                        "slow consumer: more than {} messages waiting to be sent",
                        self.capacity
                    ),
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn close(&self, code: u16, reason: String) {
        self.close.send_if_modified(|current| {
            if current.is_none() {
                *current = Some((code, reason));
                true
            } else {
                false
            }
        });
    }
}

async fn session(socket: WebSocket, state: AppState, caller: Caller) {
    let (sink, mut stream) = socket.split();
    let capacity = state.events.ws_queue.max(1);
    let (tx, rx) = mpsc::channel(capacity);
    let (close, close_rx) = watch::channel(None);
    let writer = tokio::spawn(write_loop(
        sink,
        rx,
        close_rx.clone(),
        state.events.heartbeat(),
    ));
    let out = Outbox {
        tx,
        close,
        capacity,
    };
    let mut closing = close_rx;
    let mut shutdown = bus().shutdown_signal();
    let mut session = Session {
        caller,
        auth: state.auth.clone(),
        out: out.clone(),
        subscriptions: BTreeMap::new(),
        starting: None,
        next_subscription: 1,
    };
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            _ = shutdown.changed() => {
                out.close(close_code::AWAY, "the server is shutting down".into());
                break;
            }
            _ = closing.changed() => break,
        };
        match message {
            Some(Ok(Message::Text(text))) => session.handle(text.as_str()).await,
            Some(Ok(Message::Binary(_))) => {
                session.reply(
                    &Value::Null,
                    Err(ApiError::invalid("send requests as JSON text messages")),
                );
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(_)) | Err(_)) | None => break,
        }
    }
    for (_, task) in std::mem::take(&mut session.subscriptions) {
        task.abort();
    }
    drop(session);
    drop(out);
    // The writer ends once the queue is drained (every sender is gone) or on close.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

/// Sends queued messages (and a ping every heartbeat) until the queue ends or a close
/// is requested.
async fn write_loop(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Message>,
    mut close: watch::Receiver<CloseRequest>,
    heartbeat: Duration,
) {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let close_with = |close: &watch::Receiver<CloseRequest>| {
        close.borrow().clone().map(|(code, reason)| {
            Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }))
        })
    };
    loop {
        let message = tokio::select! {
            biased;
            Ok(()) = close.changed() => {
                if let Some(frame) = close_with(&close) {
                    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(frame)).await;
                }
                return;
            }
            message = rx.recv() => match message {
                Some(message) => message,
                None => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
                    return;
                }
            },
            _ = ping.tick() => Message::Ping(Bytes::new()),
        };
        // A client that does not read blocks this send; a close request still wins.
        tokio::select! {
            biased;
            Ok(()) = close.changed() => {
                if let Some(frame) = close_with(&close) {
                    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(frame)).await;
                }
                return;
            }
            sent = sink.send(message) => if sent.is_err() { return },
        }
    }
}

/// One request message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    request_id: Value,
    action: String,
    #[serde(default)]
    data: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchData {
    library: String,
    request: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetData {
    library: String,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpsertData {
    library: String,
    #[serde(default)]
    document: Option<Value>,
    #[serde(default)]
    documents: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteData {
    library: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    ids: Option<Value>,
    #[serde(default)]
    filter: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeData {
    #[serde(default)]
    library: Option<String>,
    #[serde(default)]
    types: Option<String>,
    #[serde(default)]
    last_event_id: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsubscribeData {
    subscription: String,
}

/// `data` as `T`, or a 400 naming the action.
fn data<T: serde::de::DeserializeOwned>(action: &str, data: Value) -> Result<T, ApiError> {
    serde_json::from_value(data)
        .map_err(|e| ApiError::invalid(format!("`data` of `{action}`: {e}")))
}

/// A JSON value re-read as an API request, so errors read as the REST API's do.
fn request<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(value).map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(api::from_json(&bytes)?)
}

fn to_value<T: serde::Serialize>(value: &T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::internal(e.to_string()))
}

fn unexpected() -> ApiError {
    ApiError::internal("the engine answered with an unexpected message")
}

fn new_document(library: &str, document: &Value) -> Result<Command, ApiError> {
    let request: api::UpsertDocumentRequest = request(document)?;
    let id = request
        .id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    Ok(Command::UpsertDocument {
        library: library.into(),
        document: request.into_document(id),
    })
}

struct Session {
    caller: Caller,
    /// For the per-key rate limits, which every request message spends like an HTTP
    /// request (the upgrade itself spent one read).
    auth: std::sync::Arc<crate::auth::Auth>,
    out: Outbox,
    subscriptions: BTreeMap<String, JoinHandle<()>>,
    /// A subscription made by the current request, started after its answer.
    starting: Option<(String, super::Subscription)>,
    next_subscription: u64,
}

impl Session {
    fn reply(&self, request_id: &Value, result: Result<Value, ApiError>) {
        let message = match result {
            Ok(result) => json!({
                "type": "response", "request_id": request_id, "ok": true, "result": result,
            }),
            Err(e) => json!({
                "type": "response", "request_id": request_id, "ok": false,
                "error": {"kind": e.body.error.kind, "message": e.message()},
            }),
        };
        self.out.send(message.to_string());
    }

    async fn handle(&mut self, text: &str) {
        let request: Request = match serde_json::from_str(text) {
            Ok(request) => request,
            Err(e) => {
                self.reply(
                    &Value::Null,
                    Err(ApiError::invalid(format!(
                        "a message must be {{\"type\":\"request\",\"request_id\",\"action\",\"data\"}}: {e}"
                    ))),
                );
                return;
            }
        };
        let result = if request.kind == "request" {
            self.run(&request.action, request.data).await
        } else {
            Err(ApiError::invalid(format!(
                "unknown message type `{}`: clients send `request`",
                request.kind
            )))
        };
        self.reply(&request.request_id, result);
        if let Some((id, subscription)) = self.starting.take() {
            let task = tokio::spawn(forward(subscription, id.clone(), self.out.clone()));
            self.subscriptions.insert(id, task);
        }
    }

    /// Checks the key's scope, then spends one request of its rate budget.
    async fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.caller.scopes.contains(&scope) {
            return self.auth.spend_request(&self.caller, scope).await;
        }
        let name = if scope == Scope::Write {
            "write"
        } else {
            "read"
        };
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            format!("this API key lacks the `{name}` scope"),
        ))
    }

    async fn run(&mut self, action: &str, raw: Value) -> Result<Value, ApiError> {
        match action {
            "search" => {
                self.require(Scope::Read).await?;
                let d: SearchData = data(action, raw)?;
                let started = Instant::now();
                let request: api::SearchRequest = request(&d.request)?;
                let (mut found, _) =
                    crate::http::run_search(&self.caller, d.library.clone(), &request).await?;
                let shape = crate::http::search_shape(
                    WS_ROUTE,
                    &d.library,
                    &request,
                    &None,
                    found.hits.len(),
                );
                found.took_ms = started.elapsed().as_secs_f64() * 1e3;
                let result = to_value(&found);
                crate::http::finish_search(&self.caller, shape, started.elapsed()).await;
                result
            }
            "get" => {
                self.require(Scope::Read).await?;
                let d: GetData = data(action, raw)?;
                let query = match d.id {
                    Some(document) => Query::GetDocument {
                        library: d.library,
                        document,
                    },
                    None => Query::GetLibrary { library: d.library },
                };
                match self.caller.tenant.query(&query).await? {
                    QueryResponse::Document(doc) => to_value(&doc),
                    QueryResponse::Library(info) => to_value(&info),
                    _ => Err(unexpected()),
                }
            }
            "upsert" => {
                self.require(Scope::Write).await?;
                let d: UpsertData = data(action, raw)?;
                match (d.document, d.documents) {
                    (Some(document), None) => {
                        let command = new_document(&d.library, &document)?;
                        match self.write_one(&d.library, command).await? {
                            Outcome::DocumentUpserted(done) => to_value(&done),
                            _ => Err(unexpected()),
                        }
                    }
                    (None, Some(documents)) => self.upsert_batch(&d.library, documents).await,
                    _ => Err(ApiError::invalid(
                        "`upsert` takes either `document` or `documents`",
                    )),
                }
            }
            "delete" => {
                self.require(Scope::Write).await?;
                let d: DeleteData = data(action, raw)?;
                let command = match (d.id, d.ids, d.filter) {
                    (Some(document), None, None) => Command::DeleteDocument {
                        library: d.library.clone(),
                        document,
                    },
                    (None, ids, filter) if ids.is_some() || filter.is_some() => {
                        let mut body = serde_json::Map::new();
                        if let Some(ids) = ids {
                            body.insert("ids".into(), ids);
                        }
                        if let Some(filter) = filter {
                            body.insert("filter".into(), filter);
                        }
                        Command::DeleteDocuments {
                            library: d.library.clone(),
                            request: request(&Value::Object(body))?,
                        }
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            "`delete` takes `id`, or `ids` and/or `filter`",
                        ));
                    }
                };
                match self.write_one(&d.library, command).await? {
                    Outcome::DocumentDeleted { id, .. } => {
                        to_value(&api::DeleteDocumentsResponse {
                            deleted: 1,
                            ids: vec![id],
                        })
                    }
                    Outcome::DocumentsDeleted { ids, .. } => {
                        to_value(&api::DeleteDocumentsResponse {
                            deleted: ids.len() as u64,
                            ids,
                        })
                    }
                    _ => Err(unexpected()),
                }
            }
            "subscribe" => {
                self.require(Scope::Read).await?;
                let d: SubscribeData = data(action, raw)?;
                if self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
                    return Err(ApiError::invalid(format!(
                        "a connection may hold at most {MAX_SUBSCRIPTIONS} subscriptions"
                    )));
                }
                let filter = Filter::new(d.library.as_deref(), d.types.as_deref())?;
                let last = match d.last_event_id {
                    None | Some(Value::Null) => None,
                    Some(Value::Number(n)) => Some(parse_event_id(&n.to_string())?),
                    Some(Value::String(s)) => Some(parse_event_id(&s)?),
                    Some(other) => {
                        return Err(ApiError::invalid(format!(
                            "`last_event_id` must be an event id, got {other}"
                        )));
                    }
                };
                let id = format!("s{}", self.next_subscription);
                self.next_subscription += 1;
                let subscription = bus().subscribe(&self.caller.tenant_name, filter, last);
                // Started once the answer is queued, so it goes out before any event.
                self.starting = Some((id.clone(), subscription));
                Ok(json!({ "subscription": id }))
            }
            "unsubscribe" => {
                let d: UnsubscribeData = data(action, raw)?;
                match self.subscriptions.remove(&d.subscription) {
                    Some(task) => {
                        task.abort();
                        Ok(json!({ "subscription": d.subscription, "unsubscribed": true }))
                    }
                    None => Err(ApiError::not_found(format!(
                        "no subscription `{}` on this connection",
                        d.subscription
                    ))),
                }
            }
            other => Err(ApiError::invalid(format!(
                "unknown action `{other}`: use search, get, upsert, delete, subscribe or unsubscribe"
            ))),
        }
    }

    async fn write_one(&self, library: &str, command: Command) -> Result<Outcome, ApiError> {
        let mut outcomes = self.caller.tenant.write(library, vec![command]).await?;
        outcomes.pop().ok_or_else(unexpected)?
    }

    async fn upsert_batch(&self, library: &str, documents: Vec<Value>) -> Result<Value, ApiError> {
        let request: api::BatchUpsertRequest = request(&json!({ "documents": documents }))?;
        request.validate()?;
        let commands: Vec<Command> = request
            .documents
            .into_iter()
            .map(|d| {
                let id =
                    d.id.clone()
                        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                Command::UpsertDocument {
                    library: library.into(),
                    document: d.into_document(id),
                }
            })
            .collect();
        let results = self
            .caller
            .tenant
            .write(library, commands)
            .await?
            .into_iter()
            .map(|outcome| match outcome {
                Ok(Outcome::DocumentUpserted(done)) => api::BatchItemResult::Ok(done),
                Ok(_) => api::BatchItemResult::Err(unexpected().body),
                Err(e) => api::BatchItemResult::Err(e.body),
            })
            .collect();
        to_value(&api::BatchUpsertResponse { results })
    }
}

/// Sends a subscription's deliveries as `event` (and `reset`) messages.
async fn forward(mut subscription: super::Subscription, id: String, out: Outbox) {
    let quoted = Value::String(id).to_string();
    while let Some(delivery) = subscription.next().await {
        let text = match delivery {
            Delivery::Event(shared) => format!(
                r#"{{"type":"event","subscription":{quoted},"event":{}}}"#,
                shared.json
            ),
            Delivery::Reset { reason, id } => format!(
                r#"{{"type":"reset","subscription":{quoted},"reason":{},"id":{id}}}"#,
                Value::String(reason)
            ),
        };
        if !out.send(text) {
            return;
        }
    }
}
