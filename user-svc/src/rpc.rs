//! The Avro RPC face of user-svc: `UserService` (protocols/user.avpr)
//! implemented over [`Users`]. Generated types stay in here; the rest of the
//! crate speaks store types.

use std::sync::Arc;

use avro_rpc::codegen::HandlerError;
use avro_rpc::server::Responder;
use cinerec_service_kit::metadata::declared;
use cinerec_service_kit::rpc::{self, RpcMetricsLayer};

use crate::service::Users;
use crate::store;

/// Types, client and server trait generated from `protocols/user.avpr`.
#[allow(missing_docs)]
pub mod proto {
    avro_rpc::include_protocol!("user_service");
}

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

fn to_wire(u: &store::User) -> proto::User {
    proto::User {
        id: u.id,
        display_name: u.display_name.clone(),
        country: u.country.clone(),
        zone: u.zone.clone(),
        signup_date: u.signup_date,
        preferred_genres: u.preferred_genres.clone(),
        // The table's CHECK admits exactly the protocol's symbols.
        tier: match u.tier.as_str() {
            "PREMIUM" => proto::Tier::Premium,
            "STANDARD" => proto::Tier::Standard,
            _ => proto::Tier::Free,
        },
        updated_at: u.updated_at_ms,
    }
}

fn from_wire(u: proto::User) -> store::User {
    store::User {
        id: u.id,
        display_name: u.display_name,
        country: u.country,
        zone: u.zone,
        signup_date: u.signup_date,
        preferred_genres: u.preferred_genres,
        tier: match u.tier {
            proto::Tier::Free => "FREE",
            proto::Tier::Standard => "STANDARD",
            proto::Tier::Premium => "PREMIUM",
        }
        .to_owned(),
        updated_at_ms: u.updated_at,
    }
}

impl proto::UserService for UserRpc {
    async fn get_user(&self, id: i64) -> Result<proto::User, HandlerError<GetUserError>> {
        self.users.get(id).await.map(|u| to_wire(&u)).map_err(|e| {
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
            users: batch.found.iter().map(|u| to_wire(u)).collect(),
            missing: batch.missing,
        })
    }

    async fn upsert_user(
        &self,
        user: proto::User,
    ) -> Result<proto::User, HandlerError<UpsertUserError>> {
        self.users
            .upsert(from_wire(user))
            .await
            .map(|u| to_wire(&u))
            .map_err(|e| declared(e, |_| None, |reason| InvalidArgument { reason }.into()))
    }
}
