//! The responding side of Avro RPC: the handshake (with the cache of client
//! protocols keyed by their hash), call decoding with schema resolution from
//! the client's protocol to ours, and dispatch to a user handler that is a
//! plain `tower::Service<Request>`.
//!
//! Transports own connections; they hand each received message to
//! [`Responder::accept`] and write back what [`Responder::finish`] returns,
//! keeping one [`Connection`] per stateful connection (a fresh one per HTTP
//! request, since HTTP is stateless and every request carries a handshake).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use apache_avro::types::Value;
use bytes::Bytes;
use tower::{Service, ServiceExt};

use crate::budget::FrameBudget;
use crate::codec::{AvroCodec, Codec, Limits};
use crate::error::{BoxError, Error, Kind, Result};
use crate::protocol::{Md5Hash, Message, Protocol};
use crate::wire::{self, HandshakeMatch, HandshakeRequest, HandshakeResponse, Metadata};

/// A decoded call, as the user handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The message, from our protocol.
    pub message: Arc<Message>,
    /// Call metadata sent by the client (e.g. deadline, trace context).
    pub metadata: Metadata,
    /// The parameters as a record of our request schema (already resolved
    /// from the client's schema).
    pub params: Value,
}

/// What the handler answers.
#[derive(Debug, Clone)]
pub struct Response {
    /// Response metadata.
    pub metadata: Metadata,
    /// The response value (fitting the message's response schema), or an error.
    pub result: std::result::Result<Value, ResponseError>,
}

impl Response {
    /// A successful response without metadata.
    pub fn ok(value: Value) -> Self {
        Response {
            metadata: Metadata::new(),
            result: Ok(value),
        }
    }

    /// A system error (the `string` branch of the error union).
    pub fn system_error(message: impl Into<String>) -> Self {
        Response {
            metadata: Metadata::new(),
            result: Err(ResponseError::System(message.into())),
        }
    }
}

/// An error answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseError {
    /// A declared error: `index` is its position in the message's `errors`
    /// list (0-based, not counting the implicit `string`), `value` the error record.
    Declared {
        /// Position in [`Message::error_names`].
        index: usize,
        /// The error record.
        value: Value,
    },
    /// An undeclared (system) error, sent as the `string` branch.
    System(String),
}

/// Per-connection handshake state. On a stateful transport it lives as long
/// as the connection; once the handshake succeeded, later requests on it carry
/// no handshake.
#[derive(Debug, Default)]
pub struct Connection {
    stateful: bool,
    remote: Option<Protocol>,
}

impl Connection {
    /// State for a connection that keeps its handshake (the socket transport).
    pub fn stateful() -> Self {
        Connection {
            stateful: true,
            remote: None,
        }
    }

    /// State for one stateless exchange (HTTP).
    pub fn stateless() -> Self {
        Connection::default()
    }

    /// Whether the handshake has completed on this connection.
    pub fn is_connected(&self) -> bool {
        self.stateful && self.remote.is_some()
    }
}

/// What to do with one received message.
#[derive(Debug)]
pub enum Incoming {
    /// Send these bytes back now (handshake failure, ping, undecodable call).
    Reply(Bytes),
    /// Dispatch the call, then pass the handler's response to [`Responder::finish`].
    Call(PendingCall),
}

/// A decoded call waiting for its handler.
#[derive(Debug)]
pub struct PendingCall {
    /// The request for the handler.
    pub request: Request,
    /// Where the handler's response goes: pass it to [`Responder::finish`].
    pub reply: ReplyTo,
}

/// What [`Responder::finish`] needs to encode a response for a call.
#[derive(Debug)]
pub struct ReplyTo {
    prefix: Vec<u8>,
    message: Arc<Message>,
    no_reply: bool,
}

impl ReplyTo {
    /// Whether the peer expects a reply (not for a one-way message on an
    /// already connected stateful connection).
    pub fn expects_reply(&self) -> bool {
        !self.no_reply
    }
}

/// The server half of the protocol, shared by every connection of a server.
pub struct Responder<S> {
    local: Protocol,
    codec: Arc<dyn Codec>,
    limits: Limits,
    /// Client protocols by the hash the client announced. Bounded by
    /// `limits.max_cached_protocols` so clients cannot grow it without end.
    known: Mutex<HashMap<Md5Hash, Protocol>>,
    /// Memory all connections of this server may hold for frames still
    /// arriving (`limits.max_incomplete_bytes_total`).
    budget: Arc<FrameBudget>,
    handler: S,
}

impl<S> fmt::Debug for Responder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("local", &self.local)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<S> Responder<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    /// A responder for `local` dispatching to `handler`.
    pub fn new(local: Protocol, handler: S) -> Self {
        Responder {
            local,
            codec: Arc::new(AvroCodec::new()),
            limits: Limits::default(),
            known: Mutex::new(HashMap::new()),
            budget: Arc::new(FrameBudget::new(
                Limits::default().max_incomplete_bytes_total,
            )),
            handler,
        }
    }

    /// Replaces the datum codec.
    pub fn with_codec(mut self, codec: impl Codec) -> Self {
        self.codec = Arc::new(codec);
        self
    }

    /// Replaces the decoding limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self.budget = Arc::new(FrameBudget::new(limits.max_incomplete_bytes_total));
        self
    }

    /// The memory budget for incomplete frames shared by this server's
    /// connections (bytes in use, refusals).
    pub fn frame_budget(&self) -> &FrameBudget {
        &self.budget
    }

    /// Our protocol.
    pub fn protocol(&self) -> &Protocol {
        &self.local
    }

    /// The decoding limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Handles the handshake part of `message` (if the connection needs one)
    /// and decodes the call. An `Err` means the bytes are not a request at
    /// all; the transport should drop the connection (or answer HTTP 400).
    pub fn accept(&self, conn: &mut Connection, message: &[u8]) -> Result<Incoming> {
        let mut input = message;
        let mut prefix = Vec::new();
        let was_connected = conn.is_connected();
        let remote = if was_connected {
            conn.remote.clone()
        } else {
            let req = HandshakeRequest::decode(&mut input, &self.limits)?;
            let (resp, remote) = self.handshake(req)?;
            resp.encode(&mut prefix);
            if remote.is_none() {
                // NONE: the call is not processed; the client resends with its protocol.
                return Ok(Incoming::Reply(prefix.into()));
            }
            if conn.stateful {
                conn.remote = remote.clone();
            }
            remote
        };
        let Some(remote) = remote else {
            return Err(Error::new(
                Kind::Handshake,
                "connection has no remote protocol",
            ));
        };

        let (metadata, name) = wire::read_call_header(&mut input, &self.limits)?;
        if name.is_empty() {
            // Ping: ignore any parameters, answer with the handshake alone.
            return Ok(Incoming::Reply(prefix.into()));
        }
        let local_msg = self.local.message(name);
        let remote_msg = remote.message(name);
        let (local_msg, remote_msg) = match (local_msg, remote_msg) {
            (Some(l), Some(r)) => (l.clone(), r),
            (None, _) => return Ok(self.reply_error(prefix, &format!("no such message: {name}"))),
            (_, None) => {
                return Ok(self.reply_error(
                    prefix,
                    &format!("message {name} is not in the client's protocol"),
                ));
            }
        };
        // A client that declares the message one-way will not wait for a
        // reply, so a server that would answer it is refused. The reverse is
        // served as a two-way call (a null response): Python's avro 1.12
        // drops "one-way" from the protocols it parses and sends, and its
        // client then waits for that reply.
        if remote_msg.is_one_way() && !local_msg.is_one_way() {
            return Ok(self.reply_error(prefix, &format!("message {name}: one-way mismatch")));
        }
        let params = match self.codec.decode(
            remote_msg.request(),
            local_msg.request(),
            &mut input,
            &self.limits,
        ) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(message = name, error = %e, "undecodable parameters");
                return Ok(self.reply_error(prefix, &format!("bad parameters for {name}: {e}")));
            }
        };
        Ok(Incoming::Call(PendingCall {
            reply: ReplyTo {
                prefix,
                no_reply: remote_msg.is_one_way() && was_connected,
                message: local_msg.clone(),
            },
            request: Request {
                message: local_msg,
                metadata,
                params,
            },
        }))
    }

    /// Runs the handler for a pending call. Handler failures become system errors.
    pub async fn dispatch(&self, request: Request) -> Response {
        let handler = self.handler.clone();
        match handler.oneshot(request).await {
            Ok(r) => r,
            Err(e) => {
                let e: BoxError = e.into();
                Response::system_error(e.to_string())
            }
        }
    }

    /// Encodes the handler's response; `None` when the peer expects no reply.
    pub fn finish(&self, reply: ReplyTo, response: Response) -> Option<Bytes> {
        if reply.no_reply {
            return None;
        }
        let mut out = reply.prefix;
        let msg = &reply.message;
        let start = out.len();
        let encoded = match &response.result {
            Ok(v) => {
                wire::write_response_header(&mut out, &response.metadata, false);
                self.codec.encode(msg.response(), v, &mut out)
            }
            Err(ResponseError::System(s)) => {
                wire::write_response_header(&mut out, &response.metadata, true);
                self.codec.encode(
                    msg.errors(),
                    &Value::Union(0, Box::new(Value::String(s.clone()))),
                    &mut out,
                )
            }
            Err(ResponseError::Declared { index, value }) => {
                wire::write_response_header(&mut out, &response.metadata, true);
                if *index >= msg.error_names().len() {
                    Err(Error::new(
                        Kind::Encode,
                        format!("no declared error #{index}"),
                    ))
                } else {
                    let branch = Value::Union(*index as u32 + 1, Box::new(value.clone()));
                    self.codec.encode(msg.errors(), &branch, &mut out)
                }
            }
        };
        if let Err(e) = encoded {
            tracing::warn!(message = msg.name(), error = %e, "handler response does not fit the schema");
            out.truncate(start);
            wire::write_response_header(&mut out, &response.metadata, true);
            write_system_error(
                &mut out,
                &format!("server could not encode its response: {e}"),
            );
        }
        Some(out.into())
    }

    /// One stateless exchange (HTTP): request bytes in, response bytes out.
    pub async fn respond_stateless(&self, message: &[u8]) -> Result<Bytes> {
        let mut conn = Connection::stateless();
        match self.accept(&mut conn, message)? {
            Incoming::Reply(b) => Ok(b),
            Incoming::Call(call) => {
                let response = self.dispatch(call.request).await;
                Ok(self.finish(call.reply, response).unwrap_or_default())
            }
        }
    }

    fn reply_error(&self, mut prefix: Vec<u8>, message: &str) -> Incoming {
        wire::write_response_header(&mut prefix, &Metadata::new(), true);
        write_system_error(&mut prefix, message);
        Incoming::Reply(prefix.into())
    }

    fn handshake(&self, req: HandshakeRequest) -> Result<(HandshakeResponse, Option<Protocol>)> {
        let remote = if req.client_hash == self.local.hash() {
            Some(self.local.clone())
        } else if let Some(text) = &req.client_protocol {
            let p = Protocol::parse(text).map_err(|e| {
                Error::with_source(Kind::Handshake, "client protocol is invalid", e)
            })?;
            let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            if known.len() < self.limits.max_cached_protocols
                || known.contains_key(&req.client_hash)
            {
                known.insert(req.client_hash, p.clone());
            }
            Some(p)
        } else {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            known.get(&req.client_hash).cloned()
        };
        let server_hash_ok = req.server_hash == self.local.hash();
        let match_ = match (&remote, server_hash_ok) {
            (None, _) => HandshakeMatch::None,
            (Some(_), true) => HandshakeMatch::Both,
            (Some(_), false) => HandshakeMatch::Client,
        };
        // Our protocol goes with every answer but BOTH, as Java's server does.
        // On NONE the client may already hold the right server hash (it talked
        // to us before a restart, or it switched protocols in one JVM); Java's
        // `Requestor.setRemote` parses `serverProtocol` unconditionally on any
        // non-BOTH match, so a null there is a NullPointerException that
        // poisons every later call from that JVM.
        let (server_protocol, server_hash) = if matches!(match_, HandshakeMatch::Both) {
            (None, None)
        } else {
            (Some(self.local.text().to_string()), Some(self.local.hash()))
        };
        Ok((
            HandshakeResponse {
                match_,
                server_protocol,
                server_hash,
                meta: None,
            },
            remote,
        ))
    }
}

/// Writes the error union's `string` branch (index 0), valid for every
/// message whatever errors it declares.
fn write_system_error(out: &mut Vec<u8>, message: &str) {
    wire::write_long(out, 0);
    wire::write_bytes(out, message.as_bytes());
}
