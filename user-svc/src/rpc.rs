//! The Avro RPC face of user-svc: `UserService` (protocols/user.avpr)
//! implemented over [`Users`]. The store's rows are the generated `User`,
//! so answers need no mapping.

use std::sync::Arc;

use avro_rpc::codegen::HandlerError;
use avro_rpc::server::Responder;
use cinerec_service_kit::metadata::declared;
use cinerec_service_kit::rpc::{self, RpcMetricsLayer};

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

/// The handler stack user-svc serves (service-kit's standard stack).
pub type Handler = rpc::Handler<proto::UserServiceServer<UserRpc>>;

/// The responder for `users`, with its metrics layer (the drain needs it).
pub fn responder(users: Users) -> anyhow::Result<(Arc<Responder<Handler>>, RpcMetricsLayer)> {
    let server = proto::UserServiceServer::new(UserRpc::new(users));
    Ok(rpc::responder("user-svc", proto::protocol()?, server))
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
