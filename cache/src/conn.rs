//! One pipelined TCP connection to one server, shared by all callers.
//!
//! Callers encode their ops into bytes and hand them to a writer task, which
//! coalesces whatever is queued into one `write` (so concurrent single claims
//! pipeline on their own) and passes the expected reply shapes, in order, to a
//! reader task. The reader parses replies in that order and answers each
//! caller. Nothing here times out: the zone wraps every call in its timeout,
//! and a caller that gave up simply drops its answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::Backend;
use crate::error::{Error, ErrorKind, Result};
use crate::proto::{self, Expect, Reply};

/// Stop adding queued requests to one write beyond this many bytes.
const MAX_COALESCE: usize = 256 * 1024;

type Answer = oneshot::Sender<Result<Vec<Reply>>>;

struct Job {
    bytes: BytesMut,
    expects: Vec<Expect>,
    answer: Answer,
}

struct Awaiting {
    expects: Vec<Expect>,
    answer: Answer,
}

/// A live connection. Dropping the last handle stops both tasks.
#[derive(Debug)]
pub(crate) struct Conn {
    jobs: mpsc::Sender<Job>,
    /// Set once either task has failed: the stream is gone or out of sync and
    /// the zone must open a new connection.
    broken: Arc<AtomicBool>,
    writer: JoinHandle<()>,
    reader: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.writer.abort();
        self.reader.abort();
    }
}

fn closed() -> Error {
    Error::new(ErrorKind::Io, "connection closed")
}

impl Conn {
    /// Connect (no timeout here: the caller bounds it) and start the tasks.
    pub(crate) async fn connect(
        addr: &str,
        backend: Backend,
        max_value: usize,
        queue_depth: usize,
    ) -> Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| Error::with_source(ErrorKind::Io, format!("connect {addr}"), e))?;
        // Replies are small and latency matters more than packet count.
        stream
            .set_nodelay(true)
            .map_err(|e| Error::with_source(ErrorKind::Io, "set TCP_NODELAY", e))?;
        let (rd, wr) = stream.into_split();
        let (jobs, rx) = mpsc::channel(queue_depth);
        let (to_reader, from_writer) = mpsc::unbounded_channel();
        let broken = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(write_loop(rx, wr, to_reader, broken.clone()));
        let reader = tokio::spawn(read_loop(
            rd,
            from_writer,
            backend,
            max_value,
            broken.clone(),
        ));
        Ok(Conn {
            jobs,
            broken,
            writer,
            reader,
        })
    }

    /// Whether the connection has failed and must be replaced.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed) || self.jobs.is_closed()
    }

    /// Send pre-encoded requests and wait for one reply per entry of `expects`.
    pub(crate) async fn call(&self, bytes: BytesMut, expects: Vec<Expect>) -> Result<Vec<Reply>> {
        let (answer, rx) = oneshot::channel();
        self.jobs
            .send(Job {
                bytes,
                expects,
                answer,
            })
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

async fn write_loop(
    mut rx: mpsc::Receiver<Job>,
    mut wr: OwnedWriteHalf,
    to_reader: mpsc::UnboundedSender<Awaiting>,
    broken: Arc<AtomicBool>,
) {
    let mut out = BytesMut::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            out.extend_from_slice(&job.bytes);
            // Registered before the bytes hit the socket, so the reader always
            // knows what a reply it reads answers.
            if to_reader
                .send(Awaiting {
                    expects: job.expects,
                    answer: job.answer,
                })
                .is_err()
            {
                broken.store(true, Ordering::Relaxed);
                return;
            }
            if out.len() < MAX_COALESCE {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = wr.write_all(&out).await {
            tracing::debug!(error = %e, "cache connection write failed");
            broken.store(true, Ordering::Relaxed);
            return;
        }
        out.clear();
    }
}

async fn read_loop(
    mut rd: OwnedReadHalf,
    mut from_writer: mpsc::UnboundedReceiver<Awaiting>,
    backend: Backend,
    max_value: usize,
    broken: Arc<AtomicBool>,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let failure = loop {
        let Some(job) = from_writer.recv().await else {
            return;
        };
        let mut replies = Vec::with_capacity(job.expects.len());
        let mut failed = None;
        'replies: for &expect in &job.expects {
            loop {
                match proto::parse(backend, &mut buf, expect, max_value) {
                    Ok(Some(r)) => {
                        replies.push(r);
                        continue 'replies;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        failed = Some(e);
                        break 'replies;
                    }
                }
                if buf.capacity() - buf.len() < 8 * 1024 {
                    buf.reserve(64 * 1024);
                }
                match rd.read_buf(&mut buf).await {
                    Ok(0) => {
                        failed = Some(Error::new(ErrorKind::Io, "server closed the connection"));
                        break 'replies;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        failed = Some(Error::with_source(ErrorKind::Io, "read", e));
                        break 'replies;
                    }
                }
            }
        }
        match failed {
            None => {
                let _ = job.answer.send(Ok(replies));
            }
            Some(e) => {
                let msg = e.to_string();
                let _ = job.answer.send(Err(e));
                break msg;
            }
        };
    };
    broken.store(true, Ordering::Relaxed);
    tracing::debug!(error = %failure, "cache connection failed");
    from_writer.close();
    while let Ok(job) = from_writer.try_recv() {
        let _ = job.answer.send(Err(Error::new(
            ErrorKind::Io,
            format!("connection failed earlier: {failure}"),
        )));
    }
}
