//! `/v1/sources`: a tenant's ingress endpoints. Secrets go in and never come out.

use std::{num::NonZeroU32, sync::Arc};

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{param::Path, payload::Json, ApiResponse, Enum, Object, OpenApi};
use sentinel_queue::platform::{Platform, INGEST_TOKEN_FIELD};
use serde_json::Value as JsonValue;
use uuid::Uuid;

use crate::{
    admin::Deleted, admission, auth::TenantAuth, directory::CONFIG_CHANNEL, error::ApiError,
    ApiTags, AppState,
};

// The platforms a source can be for, from the registry in `sentinel_queue::platform`.
macro_rules! platform_names {
    ($($variant:ident => $module:ident),+ $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
        #[oai(rename_all = "lowercase")]
        pub enum PlatformName {
            $($variant),+
        }

        impl From<PlatformName> for Platform {
            fn from(name: PlatformName) -> Self {
                match name {
                    $(PlatformName::$variant => Platform::$variant),+
                }
            }
        }
    };
}

sentinel_queue::with_platforms!(platform_names);

/// Which healing steps may trigger the agent's automatic reply; default `deterministic`. A message
/// healed below it still succeeds, and its job's result says `reply_skipped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ReplyPolicy {
    /// Only messages the platform's adapter or repair healed (the default): the model's heal is a
    /// guess, and a guessed id must never receive a reply.
    Deterministic,
    /// The generic extractor's heals too (it answers only when every field is unambiguous).
    Extracted,
    /// The model's heals too.
    Any,
    /// No automatic replies.
    Never,
}

impl ReplyPolicy {
    fn as_str(self) -> &'static str {
        match self {
            ReplyPolicy::Deterministic => "deterministic",
            ReplyPolicy::Extracted => "extracted",
            ReplyPolicy::Any => "any",
            ReplyPolicy::Never => "never",
        }
    }
}

#[derive(Debug, Object)]
pub struct CreateSource {
    pub platform: PlatformName,
    #[oai(validator(max_length = 200))]
    pub name: Option<String>,
    /// Verification secrets. telegram: `secret_token` (16+ characters); whatsapp: `app_secret`
    /// (16+), `verify_token` (8+); slack: `signing_secret` (16+); salesforce: `organization_id`
    /// (15 or 18 characters; not a secret, so set `ingest_token` too); standard: `secret`
    /// (`whsec_…` of 24 to 64 bytes, or a list of up to 3 for rotation). Any platform may add
    /// `ingest_token` (24+ letters, digits, `-`, `_`): the ingest URL must then carry it as
    /// `?token=`.
    pub secrets: JsonValue,
    /// Reply credentials. telegram: `bot_token`; whatsapp: `access_token`, `phone_number_id`;
    /// slack: `bot_token`.
    pub reply: Option<JsonValue>,
    /// The agent's system prompt for replies to this source's messages.
    #[oai(validator(max_length = 20000))]
    pub system_prompt: Option<String>,
    // Documented on `ReplyPolicy`: a doc comment here would make the field an `allOf`, which
    // some client generators (openapi-python-client) cannot read.
    pub reply_policy: Option<ReplyPolicy>,
}

#[derive(Debug, Object)]
pub struct Source {
    pub id: Uuid,
    pub platform: String,
    #[oai(nullable)]
    pub name: Option<String>,
    /// Where the platform must send its webhooks. With an `ingest_token`, the creation answer's URL
    /// carries `?token=`; listings leave it out.
    pub ingest_url: String,
    /// Whether reply credentials were given (they are never returned).
    pub has_reply_credentials: bool,
    /// `deterministic`, `extracted`, `any` or `never`.
    pub reply_policy: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
pub struct SourceList {
    pub items: Vec<Source>,
}

#[derive(ApiResponse)]
pub enum CreatedSource {
    #[oai(status = 201)]
    Created(Json<Source>),
}

pub struct SourcesApi;

#[OpenApi(prefix_path = "/v1/sources", tag = "ApiTags::Sources")]
impl SourcesApi {
    /// Create an ingress endpoint for one platform.
    #[oai(path = "/", method = "post", operation_id = "createSource")]
    async fn create(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        body: Json<CreateSource>,
    ) -> Result<CreatedSource, ApiError> {
        admission::spend(&auth.0.tenant, NonZeroU32::MIN)?;
        let platform: Platform = body.platform.into();
        for (field, text) in [
            ("name", body.name.as_deref()),
            ("system_prompt", body.system_prompt.as_deref()),
        ] {
            if text.is_some_and(|text| text.contains('\0')) {
                return Err(ApiError::unprocessable(
                    "invalid_source",
                    format!("{field} must not contain U+0000"),
                ));
            }
        }
        if !body.secrets.is_object() {
            return Err(ApiError::unprocessable(
                "invalid_secrets",
                "secrets must be an object",
            ));
        }
        platform
            .validate_secrets(&body.secrets)
            .map_err(|message| ApiError::unprocessable("invalid_secrets", message))?;
        if let Some(reply) = &body.reply {
            platform
                .validate_reply_credentials(reply)
                .map_err(|message| ApiError::unprocessable("invalid_reply", message))?;
            if reply.to_string().contains("\\u0000") {
                return Err(ApiError::unprocessable(
                    "invalid_reply",
                    "reply must not contain U+0000",
                ));
            }
        }
        let row = sqlx::query!(
            "INSERT INTO sources (tenant_id, platform, name, secrets, reply, system_prompt, reply_policy)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, created_at, reply_policy",
            auth.0.tenant_id(),
            platform.as_str(),
            body.name,
            body.secrets,
            body.reply,
            body.system_prompt,
            body.reply_policy.unwrap_or(ReplyPolicy::Deterministic).as_str()
        )
        .fetch_one(&state.pool)
        .await?;
        Ok(CreatedSource::Created(Json(Source {
            id: row.id,
            platform: platform.as_str().to_owned(),
            name: body.name.clone(),
            // The one answer that shows an ingest token: the URL to give the platform.
            ingest_url: match body
                .secrets
                .get(INGEST_TOKEN_FIELD)
                .and_then(JsonValue::as_str)
            {
                Some(token) => format!("{}?token={token}", state.ingest_url(row.id)),
                None => state.ingest_url(row.id),
            },
            has_reply_credentials: body.reply.is_some(),
            reply_policy: row.reply_policy,
            created_at: row.created_at,
        })))
    }

    /// The tenant's sources, without their secrets.
    #[oai(path = "/", method = "get", operation_id = "listSources")]
    async fn list(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
    ) -> Result<Json<SourceList>, ApiError> {
        let rows = sqlx::query!(
            "SELECT id, platform, name, reply IS NOT NULL AS \"has_reply!\", reply_policy, created_at FROM sources
             WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at DESC",
            auth.0.tenant_id()
        )
        .fetch_all(&state.pool)
        .await?;
        Ok(Json(SourceList {
            items: rows
                .into_iter()
                .map(|row| Source {
                    id: row.id,
                    ingest_url: state.ingest_url(row.id),
                    platform: row.platform,
                    name: row.name,
                    has_reply_credentials: row.has_reply,
                    reply_policy: row.reply_policy,
                    created_at: row.created_at,
                })
                .collect(),
        }))
    }

    /// Delete a source. Its ingress answers 404 afterwards, on every gateway.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteSource")]
    async fn delete(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        id: Path<Uuid>,
    ) -> Result<Deleted, ApiError> {
        admission::spend(&auth.0.tenant, NonZeroU32::MIN)?;
        let deleted = sqlx::query_scalar!(
            r#"WITH deleted AS (
                   UPDATE sources SET deleted_at = now()
                   WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL RETURNING id
               )
               SELECT count(pg_notify($3, 'source')) AS "n!" FROM deleted"#,
            id.0,
            auth.0.tenant_id(),
            CONFIG_CHANNEL
        )
        .fetch_one(&state.pool)
        .await?;
        if deleted == 0 {
            return Err(ApiError::not_found(
                "source_not_found",
                format!("no source {}", id.0),
            ));
        }
        state.directory.invalidate_all();
        Ok(Deleted::NoContent)
    }
}
