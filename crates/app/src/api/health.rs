//! Liveness and readiness probes (contract section 7).

use poem::web::Data;
use poem_openapi::payload::PlainText;
use poem_openapi::{ApiResponse, OpenApi};

use super::ApiTags;
use super::error::RETRY_AFTER_SECONDS;
use crate::api::state::AppState;

#[derive(Debug, ApiResponse)]
enum ReadyResponse {
    /// The database answers.
    #[oai(status = 200)]
    Ready(PlainText<&'static str>),
    /// The database does not answer, or the server is shutting down.
    #[oai(status = 503)]
    NotReady(PlainText<&'static str>, #[oai(header = "Retry-After")] u32),
}

#[derive(Debug, Default)]
pub struct HealthApi;

#[OpenApi(tag = "ApiTags::Operations")]
impl HealthApi {
    /// Liveness
    ///
    /// 200 while the process runs.
    #[oai(path = "/health/live", method = "get", operation_id = "health_live")]
    async fn live(&self) -> PlainText<&'static str> {
        PlainText("ok")
    }

    /// Readiness
    ///
    /// 200 when the database answers, 503 otherwise, and 503 from the moment the server
    /// begins to shut down (while it still serves requests in flight and, with
    /// `SHUTDOWN_DELAY_SECONDS`, new ones), so that load balancers stop sending it any.
    #[oai(path = "/health/ready", method = "get", operation_id = "health_ready")]
    async fn ready(&self, state: Data<&AppState>) -> ReadyResponse {
        if state.draining.is_draining() {
            return ReadyResponse::NotReady(PlainText("shutting down"), RETRY_AFTER_SECONDS);
        }
        match state.store.ping().await {
            Ok(()) => ReadyResponse::Ready(PlainText("ready")),
            Err(err) => {
                tracing::warn!(error = format!("{err:#}"), "not ready");
                ReadyResponse::NotReady(PlainText("database unavailable"), RETRY_AFTER_SECONDS)
            }
        }
    }
}
