//! The requesting side of Avro RPC: a `tower::Service<Call>` that performs
//! the handshake (caching the server's protocol per endpoint, resending our
//! protocol after `NONE`) and decodes replies with schema resolution from the
//! server's protocol to ours.
//!
//! Requests travel as already-encoded parameter bytes, so a [`Call`] is cheap
//! to clone and tower's retry can resend it.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};

use apache_avro::types::Value;
use bytes::Bytes;
use futures::future::BoxFuture;

use crate::codec::{AvroCodec, Codec, Limits};
use crate::error::{Error, Kind, Result};
use crate::protocol::{Message, Protocol};
use crate::wire::{self, HandshakeMatch, HandshakeRequest, HandshakeResponse, Metadata};

/// Moves request bytes to a server and response bytes back.
///
/// Stateless transports (HTTP) carry a handshake in every request; stateful
/// ones (the socket transport) handshake once per connection and can send
/// one-way messages without waiting for a reply.
pub trait Transport: Send + Sync + 'static {
    /// Sends one request message and waits for its response message.
    fn transceive(&self, message: Bytes) -> BoxFuture<'static, Result<Bytes>>;

    /// Sends a message that gets no reply (one-way on a connected stateful
    /// transport). Stateless transports never get asked.
    fn send(&self, message: Bytes) -> BoxFuture<'static, Result<()>>;

    /// Whether a completed handshake holds for later requests.
    fn is_stateful(&self) -> bool;

    /// Identifies the server, keying the cache of server protocols.
    fn endpoint(&self) -> String;

    /// Whether the transport can no longer carry calls (a stateful
    /// connection that closed). The client then reports not-ready, which is
    /// what `tower::reconnect::Reconnect` watches to build a new one.
    fn is_closed(&self) -> bool {
        false
    }
}

/// One call to make: the message name, metadata and the parameters encoded
/// with *our* request schema for that message.
#[derive(Debug, Clone)]
pub struct Call {
    /// Message name in our protocol.
    pub message: Arc<str>,
    /// Call metadata (deadline, trace context, ...).
    pub metadata: Metadata,
    /// Parameters, encoded with our request record schema.
    pub params: Bytes,
}

impl Call {
    /// Encodes `params` (a record of the message's request schema) into a call.
    pub fn new(client: &Client, message: &str, params: &Value) -> Result<Self> {
        let msg = client.message(message)?;
        let mut buf = Vec::new();
        client.inner.codec.encode(msg.request(), params, &mut buf)?;
        Ok(Call {
            message: message.into(),
            metadata: Metadata::new(),
            params: buf.into(),
        })
    }
}

/// The server's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Response metadata.
    pub metadata: Metadata,
    /// The response (resolved to our response schema; `Null` for one-way
    /// messages) or the error the server sent.
    pub result: std::result::Result<Value, RemoteError>,
}

/// An error the server sent back (the error flag was set).
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteError {
    /// One of the message's declared errors: `index` into
    /// [`Message::error_names`], `value` the error record (resolved to ours).
    Declared {
        /// Position in our message's declared errors.
        index: usize,
        /// The error record.
        value: Value,
    },
    /// A system error (the `string` branch).
    System(String),
}

/// Server protocols learnt by handshakes, by endpoint. Share one between
/// clients of the same servers so each learns a server's protocol once.
#[derive(Debug, Clone, Default)]
pub struct RemoteCache {
    inner: Arc<Mutex<HashMap<String, Protocol>>>,
}

impl RemoteCache {
    fn get(&self, endpoint: &str) -> Option<Protocol> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(endpoint)
            .cloned()
    }

    fn put(&self, endpoint: &str, p: Protocol) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(endpoint.to_string(), p);
    }
}

/// An Avro RPC client for one endpoint.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    local: Protocol,
    transport: Box<dyn Transport>,
    endpoint: String,
    codec: Arc<dyn Codec>,
    limits: Limits,
    cache: RemoteCache,
    /// The server's protocol once known (from the cache or a handshake).
    remote: RwLock<Option<Protocol>>,
    /// Set after a `NONE`: the next handshake carries our protocol text.
    send_protocol: AtomicBool,
    /// Stateful transports: set once the connection's handshake completed.
    connected: AtomicBool,
    /// Serialises the one handshake of a stateful connection; calls wait on it.
    handshake_lock: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("local", &self.inner.local)
            .field("endpoint", &self.inner.endpoint)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Client`].
#[derive(Debug)]
pub struct ClientBuilder {
    local: Protocol,
    codec: Option<Arc<dyn Codec>>,
    limits: Limits,
    cache: RemoteCache,
}

impl ClientBuilder {
    /// Replaces the datum codec.
    pub fn codec(mut self, codec: impl Codec) -> Self {
        self.codec = Some(Arc::new(codec));
        self
    }

    /// Replaces the decoding limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Shares a cache of server protocols with other clients.
    pub fn remote_cache(mut self, cache: RemoteCache) -> Self {
        self.cache = cache;
        self
    }

    /// A client over `transport`. On a stateful transport the handshake
    /// happens with the first call (or [`Client::handshake`]).
    pub fn build(self, transport: impl Transport) -> Client {
        let endpoint = transport.endpoint();
        let remote = self.cache.get(&endpoint);
        Client {
            inner: Arc::new(Inner {
                local: self.local,
                transport: Box::new(transport),
                endpoint,
                codec: self.codec.unwrap_or_else(|| Arc::new(AvroCodec::new())),
                limits: self.limits,
                cache: self.cache,
                remote: RwLock::new(remote),
                send_protocol: AtomicBool::new(false),
                connected: AtomicBool::new(false),
                handshake_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }
}

impl Client {
    /// Starts building a client speaking `local`.
    pub fn builder(local: Protocol) -> ClientBuilder {
        ClientBuilder {
            local,
            codec: None,
            limits: Limits::default(),
            cache: RemoteCache::default(),
        }
    }

    /// A client with default settings.
    pub fn new(local: Protocol, transport: impl Transport) -> Self {
        Client::builder(local).build(transport)
    }

    /// Our protocol.
    pub fn protocol(&self) -> &Protocol {
        &self.inner.local
    }

    /// The server's protocol, once a handshake told us.
    pub fn remote_protocol(&self) -> Option<Protocol> {
        self.inner
            .remote
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The codec, for encoding parameters.
    pub fn codec(&self) -> &dyn Codec {
        &*self.inner.codec
    }

    /// A message of our protocol.
    pub fn message(&self, name: &str) -> Result<&Arc<Message>> {
        self.inner.local.message(name).ok_or_else(|| {
            Error::new(
                Kind::UnknownMessage,
                format!("no message {name:?} in our protocol"),
            )
        })
    }

    /// Makes the call.
    pub async fn call(&self, call: Call) -> Result<Reply> {
        self.inner.clone().call(call).await
    }

    /// Completes the handshake now (on a stateful transport: with a ping),
    /// instead of with the first call.
    pub async fn handshake(&self) -> Result<()> {
        if self.inner.transport.is_stateful() {
            self.inner.ensure_connected().await
        } else {
            let reply = self
                .inner
                .clone()
                .stateless(&Metadata::new(), "", &[], None)
                .await?;
            drop(reply);
            Ok(())
        }
    }
}

impl Inner {
    async fn call(self: Arc<Self>, call: Call) -> Result<Reply> {
        let msg = self
            .local
            .message(&call.message)
            .ok_or_else(|| {
                Error::new(
                    Kind::UnknownMessage,
                    format!("no message {:?} in our protocol", call.message),
                )
            })?
            .clone();
        if !self.transport.is_stateful() {
            return self
                .stateless(&call.metadata, &call.message, &call.params, Some(&msg))
                .await
                .map(|r| r.unwrap_or_else(null_reply));
        }
        self.ensure_connected().await?;
        let mut buf = Vec::with_capacity(call.params.len() + call.message.len() + 8);
        wire::write_call_header(&mut buf, &call.metadata, &call.message);
        buf.extend_from_slice(&call.params);
        if msg.is_one_way() {
            self.transport.send(buf.into()).await?;
            return Ok(null_reply());
        }
        let response = self.transport.transceive(buf.into()).await?;
        let mut input = &response[..];
        self.read_response(&msg, &mut input)
    }

    /// A stateless exchange: handshake + call, repeated once with our
    /// protocol text if the server did not know us. `msg` is `None` for a ping.
    async fn stateless(
        self: Arc<Self>,
        metadata: &Metadata,
        name: &str,
        params: &[u8],
        msg: Option<&Arc<Message>>,
    ) -> Result<Option<Reply>> {
        for _ in 0..2 {
            let mut buf = Vec::with_capacity(params.len() + 64);
            self.handshake_request().encode(&mut buf);
            wire::write_call_header(&mut buf, metadata, name);
            buf.extend_from_slice(params);
            let response = self.transport.transceive(buf.into()).await?;
            let mut input = &response[..];
            let hs = HandshakeResponse::decode(&mut input, &self.limits)?;
            if !self.learn(hs)? {
                continue;
            }
            return match msg {
                Some(m) => self.read_response(m, &mut input).map(Some),
                None => Ok(None),
            };
        }
        Err(Error::new(
            Kind::Handshake,
            "server did not accept our protocol",
        ))
    }

    /// Stateful transports: handshake once (a ping), holding every call
    /// until it has completed.
    async fn ensure_connected(&self) -> Result<()> {
        if self.connected.load(Ordering::Acquire) {
            return Ok(());
        }
        let _guard = self.handshake_lock.lock().await;
        if self.connected.load(Ordering::Acquire) {
            return Ok(());
        }
        for _ in 0..2 {
            let mut buf = Vec::with_capacity(64);
            self.handshake_request().encode(&mut buf);
            wire::write_call_header(&mut buf, &Metadata::new(), "");
            let response = self.transport.transceive(buf.into()).await?;
            let mut input = &response[..];
            let hs = HandshakeResponse::decode(&mut input, &self.limits)?;
            if self.learn(hs)? {
                self.connected.store(true, Ordering::Release);
                return Ok(());
            }
        }
        Err(Error::new(
            Kind::Handshake,
            "server did not accept our protocol",
        ))
    }

    fn handshake_request(&self) -> HandshakeRequest {
        let remote_hash = self
            .remote
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(Protocol::hash);
        HandshakeRequest {
            client_hash: self.local.hash(),
            client_protocol: self
                .send_protocol
                .load(Ordering::Relaxed)
                .then(|| self.local.text().to_string()),
            // Guess the server speaks our protocol until told otherwise.
            server_hash: remote_hash.unwrap_or_else(|| self.local.hash()),
            meta: None,
        }
    }

    /// Applies a handshake response; `Ok(true)` if the call was processed.
    fn learn(&self, hs: HandshakeResponse) -> Result<bool> {
        if let Some(text) = &hs.server_protocol {
            let p = Protocol::parse(text).map_err(|e| {
                Error::with_source(Kind::Handshake, "server protocol is invalid", e)
            })?;
            self.cache.put(&self.endpoint, p.clone());
            *self.remote.write().unwrap_or_else(|p| p.into_inner()) = Some(p);
        }
        match hs.match_ {
            HandshakeMatch::None => {
                self.send_protocol.store(true, Ordering::Relaxed);
                Ok(false)
            }
            HandshakeMatch::Client if hs.server_protocol.is_none() => Err(Error::new(
                Kind::Handshake,
                "CLIENT match without the server protocol",
            )),
            HandshakeMatch::Client | HandshakeMatch::Both => {
                self.send_protocol.store(false, Ordering::Relaxed);
                let mut remote = self.remote.write().unwrap_or_else(|p| p.into_inner());
                if remote.is_none() {
                    // BOTH against our own hash: the server speaks our protocol.
                    *remote = Some(self.local.clone());
                }
                Ok(true)
            }
        }
    }

    fn read_response(&self, msg: &Arc<Message>, input: &mut &[u8]) -> Result<Reply> {
        let (metadata, is_error) = wire::read_response_header(input, &self.limits)?;
        let remote = self
            .remote
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| self.local.clone());
        let remote_msg = remote.message(msg.name());
        let result = if is_error {
            let writer = remote_msg.map(|m| m.errors()).unwrap_or(msg.errors());
            match self
                .codec
                .decode(writer, msg.errors(), input, &self.limits)?
            {
                Value::Union(i, v) => match *v {
                    Value::String(s) if i == 0 => Err(RemoteError::System(s)),
                    v => Err(RemoteError::Declared {
                        index: (i as usize).saturating_sub(1),
                        value: v,
                    }),
                },
                Value::String(s) => Err(RemoteError::System(s)),
                other => Err(RemoteError::Declared {
                    index: 0,
                    value: other,
                }),
            }
        } else {
            let remote_msg = remote_msg.ok_or_else(|| {
                Error::new(
                    Kind::UnknownMessage,
                    format!("server protocol has no message {:?}", msg.name()),
                )
            })?;
            Ok(self
                .codec
                .decode(remote_msg.response(), msg.response(), input, &self.limits)?)
        };
        Ok(Reply { metadata, result })
    }
}

fn null_reply() -> Reply {
    Reply {
        metadata: Metadata::new(),
        result: Ok(Value::Null),
    }
}

impl tower::Service<Call> for Client {
    type Response = Reply;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Reply>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.inner.transport.is_closed() {
            return Poll::Ready(Err(Error::new(Kind::Transport, "connection closed")));
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        Box::pin(self.inner.clone().call(call))
    }
}
