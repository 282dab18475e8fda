//! The Avro RPC face of movie-svc: `MovieService` (protocols/movie.avpr)
//! implemented over [`Movies`]. Generated types stay in here; the rest of the
//! crate speaks store types.

use std::sync::Arc;

use avro_rpc::codegen::HandlerError;
use avro_rpc::server::Responder;
use cinerec_service_kit::metadata::declared;
use cinerec_service_kit::rpc::{self, RpcMetricsLayer};

use crate::service::Movies;
use crate::store;

/// Types, client and server trait generated from `protocols/movie.avpr`.
#[allow(missing_docs)]
pub mod proto {
    avro_rpc::include_protocol!("movie_service");
}

use proto::{GetMovieError, GetMoviesError, InvalidArgument, NotFound, UpsertMovieError};

/// `MovieService` over [`Movies`].
#[derive(Debug, Clone)]
pub struct MovieRpc {
    movies: Movies,
}

impl MovieRpc {
    /// Serves `movies`.
    pub fn new(movies: Movies) -> MovieRpc {
        MovieRpc { movies }
    }
}

/// The handler stack movie-svc serves (service-kit's standard stack).
pub type Handler = rpc::Handler<proto::MovieServiceServer<MovieRpc>>;

/// The responder for `movies`, with its metrics layer (the drain needs it).
pub fn responder(movies: Movies) -> anyhow::Result<(Arc<Responder<Handler>>, RpcMetricsLayer)> {
    let server = proto::MovieServiceServer::new(MovieRpc::new(movies));
    Ok(rpc::responder("movie-svc", proto::protocol()?, server))
}

fn to_wire(m: &store::Movie) -> proto::Movie {
    proto::Movie {
        id: m.id,
        title: m.title.clone(),
        year: m.year,
        genres: m.genres.clone(),
        runtime_minutes: m.runtime_minutes,
        popularity: m.popularity,
        updated_at: m.updated_at_ms,
    }
}

fn from_wire(m: proto::Movie) -> store::Movie {
    store::Movie {
        id: m.id,
        title: m.title,
        year: m.year,
        genres: m.genres,
        runtime_minutes: m.runtime_minutes,
        popularity: m.popularity,
        updated_at_ms: m.updated_at,
    }
}

impl proto::MovieService for MovieRpc {
    async fn get_movie(&self, id: i64) -> Result<proto::Movie, HandlerError<GetMovieError>> {
        self.movies.get(id).await.map(|m| to_wire(&m)).map_err(|e| {
            declared(
                e,
                |id| Some(NotFound { id }.into()),
                |reason| InvalidArgument { reason }.into(),
            )
        })
    }

    async fn get_movies(
        &self,
        ids: Vec<i64>,
    ) -> Result<proto::MovieBatch, HandlerError<GetMoviesError>> {
        let batch = self
            .movies
            .get_many(&ids)
            .await
            .map_err(|e| declared(e, |_| None, |reason| InvalidArgument { reason }.into()))?;
        Ok(proto::MovieBatch {
            movies: batch.found.iter().map(|m| to_wire(m)).collect(),
            missing: batch.missing,
        })
    }

    async fn upsert_movie(
        &self,
        movie: proto::Movie,
    ) -> Result<proto::Movie, HandlerError<UpsertMovieError>> {
        self.movies
            .upsert(from_wire(movie))
            .await
            .map(|m| to_wire(&m))
            .map_err(|e| declared(e, |_| None, |reason| InvalidArgument { reason }.into()))
    }
}
