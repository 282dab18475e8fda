//! Schema resolution across protocol versions: a client and a server one
//! compatible version apart (v2 adds a field with a default and removes one
//! that v1 gives a default) interoperate in both directions, over the
//! stateless path and the socket transport.

use std::convert::Infallible;
use std::sync::Arc;

use avro_rpc::export::apache_avro::types::Value;
use avro_rpc::transport::socket::{SocketTransport, serve_connection};
use avro_rpc::{Call, Client, Limits, Protocol, Request, Responder, Response};

const V1: &str = r#"{"protocol": "Profiles", "namespace": "org.example.profiles",
 "types": [{"type": "record", "name": "Profile", "fields": [
    {"name": "id", "type": "long"},
    {"name": "nickname", "type": "string", "default": "anon"},
    {"name": "email", "type": "string"}]}],
 "messages": {"put": {"request": [{"name": "profile", "type": "Profile"}], "response": "Profile"}}}"#;

const V2: &str = r#"{"protocol": "Profiles", "namespace": "org.example.profiles",
 "types": [{"type": "record", "name": "Profile", "fields": [
    {"name": "id", "type": "long"},
    {"name": "email", "type": "string"},
    {"name": "age", "type": "int", "default": 18}]}],
 "messages": {"put": {"request": [{"name": "profile", "type": "Profile"}], "response": "Profile"}}}"#;

/// Answers `put` with the profile as the server sees it (after resolution),
/// so the test sees both resolutions: request (client→server schema) and
/// response (server→client schema).
fn echo_server(
    version: &'static str,
) -> Arc<
    Responder<
        impl tower::Service<Request, Response = Response, Error = Infallible, Future = impl Send>
        + Clone
        + Send
        + Sync,
    >,
> {
    Arc::new(Responder::new(
        Protocol::parse(version).unwrap(),
        tower::service_fn(|req: Request| async move {
            let Value::Record(mut fields) = req.params else {
                return Ok(Response::system_error("params not a record"));
            };
            Ok::<_, Infallible>(Response::ok(fields.remove(0).1))
        }),
    ))
}

fn rec(fields: &[(&str, Value)]) -> Value {
    Value::Record(
        fields
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect(),
    )
}

fn put(client: &Client, profile: Value) -> Call {
    Call::new(client, "put", &rec(&[("profile", profile)])).unwrap()
}

fn v1_profile() -> Value {
    rec(&[
        ("id", Value::Long(1)),
        ("nickname", Value::String("neo".into())),
        ("email", Value::String("n@x".into())),
    ])
}

fn v2_profile() -> Value {
    rec(&[
        ("id", Value::Long(2)),
        ("email", Value::String("t@x".into())),
        ("age", Value::Int(33)),
    ])
}

async fn socket_client(client_version: &str, server_version: &'static str) -> Client {
    let (a, b) = tokio::io::duplex(64 * 1024);
    tokio::spawn(serve_connection(b, echo_server(server_version)));
    Client::new(
        Protocol::parse(client_version).unwrap(),
        SocketTransport::new(a, "evolution", Limits::default()),
    )
}

#[tokio::test]
async fn old_client_new_server() {
    let client = socket_client(V1, V2).await;
    let r = client.call(put(&client, v1_profile())).await.unwrap();
    // Server saw {id, email, age: 18 (default)}; the client reads that back
    // as v1, getting nickname's default since v2 has no nickname.
    assert_eq!(
        r.result,
        Ok(rec(&[
            ("id", Value::Long(1)),
            ("nickname", Value::String("anon".into())),
            ("email", Value::String("n@x".into())),
        ]))
    );
}

#[tokio::test]
async fn new_client_old_server() {
    let client = socket_client(V2, V1).await;
    let r = client.call(put(&client, v2_profile())).await.unwrap();
    // Server (v1) saw nickname "anon" by default and dropped age; back at
    // the v2 client, age is its default again.
    assert_eq!(
        r.result,
        Ok(rec(&[
            ("id", Value::Long(2)),
            ("email", Value::String("t@x".into())),
            ("age", Value::Int(18)),
        ]))
    );
}

#[tokio::test]
async fn old_client_new_server_stateless() {
    let server = echo_server(V2);
    // Drive the stateless path directly through the responder.
    struct Direct<S>(Arc<Responder<S>>);
    impl<S> avro_rpc::Transport for Direct<S>
    where
        S: tower::Service<Request, Response = Response> + Clone + Send + Sync + 'static,
        S::Error: Into<avro_rpc::BoxError>,
        S::Future: Send,
    {
        fn transceive(
            &self,
            m: bytes::Bytes,
        ) -> futures::future::BoxFuture<'static, avro_rpc::Result<bytes::Bytes>> {
            let r = self.0.clone();
            Box::pin(async move { r.respond_stateless(&m).await })
        }
        fn send(
            &self,
            m: bytes::Bytes,
        ) -> futures::future::BoxFuture<'static, avro_rpc::Result<()>> {
            let f = self.transceive(m);
            Box::pin(async move { f.await.map(|_| ()) })
        }
        fn is_stateful(&self) -> bool {
            false
        }
        fn endpoint(&self) -> String {
            "direct".into()
        }
    }
    let client = Client::new(Protocol::parse(V1).unwrap(), Direct(server));
    let r = client.call(put(&client, v1_profile())).await.unwrap();
    assert_eq!(
        r.result,
        Ok(rec(&[
            ("id", Value::Long(1)),
            ("nickname", Value::String("anon".into())),
            ("email", Value::String("n@x".into())),
        ]))
    );
}
