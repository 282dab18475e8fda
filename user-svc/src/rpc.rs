//! The Avro RPC face of user-svc: `UserService` (protocols/user.avpr)
//! implemented over [`Users`]. The store's rows are the generated `User`,
//! so answers need no mapping.

use std::sync::Arc;

use avro_rpc::codegen::HandlerError;
use avro_rpc::layer::deadline::HonourDeadlineLayer;
use avro_rpc::server::Responder;
use cinerec_service_kit::rpc::{RpcMetrics, RpcMetricsLayer};
use tower::ServiceBuilder;

use cinerec_service_kit::metadata::declared;

pub use crate::proto;
use crate::service::Users;

use proto::{GetUserError, GetUsersError, InvalidArgument, NotFound, UpsertUserError};

/// `UserService` over [`Users`].
#[derive(Debug, Clone)]
pub struct UserRpc {
    users: Users,
}

impl UserRpc {
    /// Serves `users`.
    pub fn new(users: Users) -> UserRpc {
        UserRpc { users }
    }
}

/// The handler stack user-svc serves (see `cinerec_service_kit::rpc` for why
/// the layers sit in this order).
pub type Handler = avro_rpc::layer::trace::TraceHandler<
    RpcMetrics<<HonourDeadlineLayer as tower::Layer<proto::UserServiceServer<UserRpc>>>::Service>,
>;

/// The responder for `users`, with its metrics layer (the drain needs it).
pub fn responder(users: Users) -> anyhow::Result<(Arc<Responder<Handler>>, RpcMetricsLayer)> {
    let metrics = RpcMetricsLayer::new("user-svc");
    let protocol = proto::protocol()?;
    // Outermost: the server span (a child of the caller's, from the call
    // metadata) covers the metrics, the deadline check and the handler.
    let handler = ServiceBuilder::new()
        .layer(cinerec_service_kit::trace_context::rpc_server_layer(
            &protocol,
        ))
        .layer(metrics.clone())
        .layer(HonourDeadlineLayer::new())
        .service(proto::UserServiceServer::new(UserRpc::new(users)));
    Ok((Arc::new(Responder::new(protocol, handler)), metrics))
}

impl proto::UserService for UserRpc {
    async fn get_user(&self, id: i64) -> Result<proto::User, HandlerError<GetUserError>> {
        self.users
            .get(id)
            .await
            .map(Arc::unwrap_or_clone)
            .map_err(|e| {
                declared(
                    e,
                    |id| Some(NotFound { id }.into()),
                    |reason| InvalidArgument { reason }.into(),
                )
            })
    }

    async fn get_users(
        &self,
        ids: Vec<i64>,
    ) -> Result<proto::UserBatch, HandlerError<GetUsersError>> {
        let batch = self
            .users
            .get_many(&ids)
            .await
            .map_err(|e| declared(e, |_| None, |reason| InvalidArgument { reason }.into()))?;
        Ok(proto::UserBatch {
            users: batch.found.into_iter().map(Arc::unwrap_or_clone).collect(),
            missing: batch.missing,
        })
    }

    async fn upsert_user(
        &self,
        user: proto::User,
    ) -> Result<proto::User, HandlerError<UpsertUserError>> {
        self.users
            .upsert(user)
            .await
            .map(Arc::unwrap_or_clone)
            .map_err(|e| declared(e, |_| None, |reason| InvalidArgument { reason }.into()))
    }
}
