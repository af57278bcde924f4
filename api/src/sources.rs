//! `/v1/sources`: a tenant's ingress endpoints. Secrets go in and never come out.

use std::{num::NonZeroU32, sync::Arc};

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::Path, payload::Json, types::MaybeUndefined, ApiResponse, Enum, Object, OpenApi,
};
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
    /// The agent's system prompt for replies to this source's messages.
    #[oai(nullable)]
    pub system_prompt: Option<String>,
    /// After a rotation, the replaced secrets are still taken until this time.
    #[oai(nullable)]
    pub previous_secrets_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// When the source was last changed; null when never.
    #[oai(nullable)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// A change to a source; what is absent stays as it is. The ingest URL never changes.
#[derive(Debug, Object)]
pub struct UpdateSource {
    #[oai(nullable, validator(max_length = 200))]
    pub name: MaybeUndefined<String>,
    /// `null` removes it (replies then use the default prompt).
    #[oai(nullable, validator(max_length = 20000))]
    pub system_prompt: MaybeUndefined<String>,
    // Documented on `ReplyPolicy` (a doc comment here would make the field an `allOf`).
    pub reply_policy: Option<ReplyPolicy>,
    /// New reply credentials, as on creation; `null` removes them (no more replies).
    #[oai(nullable)]
    pub reply: MaybeUndefined<JsonValue>,
    /// New verification secrets, checked as on creation. The secrets they replace stay valid for
    /// `secrets_overlap_secs`, so webhooks signed while the platform switches over are taken.
    pub secrets: Option<JsonValue>,
    /// How long the replaced secrets stay valid; default 86400 (a day), 0 ends them at once.
    #[oai(validator(minimum(value = "0"), maximum(value = "2592000")))]
    pub secrets_overlap_secs: Option<u32>,
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

/// Free-text fields must not hold U+0000, which PostgreSQL's text cannot store.
fn check_texts(fields: &[(&str, Option<&str>)]) -> Result<(), ApiError> {
    for (field, text) in fields {
        if text.is_some_and(|text| text.contains('\0')) {
            return Err(ApiError::unprocessable(
                "invalid_source",
                format!("{field} must not contain U+0000"),
            ));
        }
    }
    Ok(())
}

fn check_secrets(platform: Platform, secrets: &JsonValue) -> Result<(), ApiError> {
    if !secrets.is_object() {
        return Err(ApiError::unprocessable(
            "invalid_secrets",
            "secrets must be an object",
        ));
    }
    platform
        .validate_secrets(secrets)
        .map_err(|message| ApiError::unprocessable("invalid_secrets", message))
}

fn check_reply(platform: Platform, reply: &JsonValue) -> Result<(), ApiError> {
    platform
        .validate_reply_credentials(reply)
        .map_err(|message| ApiError::unprocessable("invalid_reply", message))?;
    if reply.to_string().contains("\\u0000") {
        return Err(ApiError::unprocessable(
            "invalid_reply",
            "reply must not contain U+0000",
        ));
    }
    Ok(())
}

/// The tenant's sources (or only `id`), newest first, as the API shows them.
async fn tenant_sources(
    state: &AppState,
    tenant_id: Uuid,
    id: Option<Uuid>,
) -> Result<Vec<Source>, ApiError> {
    let rows = sqlx::query!(
        r#"SELECT id, platform, name, reply IS NOT NULL AS "has_reply!", reply_policy, system_prompt,
                  CASE WHEN previous_secrets_until > now() THEN previous_secrets_until END AS previous_secrets_until,
                  created_at, updated_at
           FROM sources
           WHERE tenant_id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR id = $2)
           ORDER BY created_at DESC"#,
        tenant_id,
        id
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Source {
            id: row.id,
            ingest_url: state.ingest_url(row.id),
            platform: row.platform,
            name: row.name,
            has_reply_credentials: row.has_reply,
            reply_policy: row.reply_policy,
            system_prompt: row.system_prompt,
            previous_secrets_until: row.previous_secrets_until,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
        .collect())
}

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
        check_texts(&[
            ("name", body.name.as_deref()),
            ("system_prompt", body.system_prompt.as_deref()),
        ])?;
        check_secrets(platform, &body.secrets)?;
        if let Some(reply) = &body.reply {
            check_reply(platform, reply)?;
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
            system_prompt: body.system_prompt.clone(),
            previous_secrets_until: None,
            created_at: row.created_at,
            updated_at: None,
        })))
    }

    /// The tenant's sources, without their secrets.
    #[oai(path = "/", method = "get", operation_id = "listSources")]
    async fn list(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
    ) -> Result<Json<SourceList>, ApiError> {
        let items = tenant_sources(&state, auth.0.tenant_id(), None).await?;
        Ok(Json(SourceList { items }))
    }

    /// One source, without its secrets.
    #[oai(path = "/:id", method = "get", operation_id = "getSource")]
    async fn get(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        id: Path<Uuid>,
    ) -> Result<Json<Source>, ApiError> {
        tenant_sources(&state, auth.0.tenant_id(), Some(id.0))
            .await?
            .pop()
            .map(Json)
            .ok_or_else(|| ApiError::not_found("source_not_found", format!("no source {}", id.0)))
    }

    /// Change a source's name, system prompt, reply policy or reply credentials, or rotate its
    /// secrets (the replaced ones stay valid for `secrets_overlap_secs`). The ingest URL stays.
    #[oai(path = "/:id", method = "patch", operation_id = "updateSource")]
    async fn update(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        id: Path<Uuid>,
        body: Json<UpdateSource>,
    ) -> Result<Json<Source>, ApiError> {
        admission::spend(&auth.0.tenant, NonZeroU32::MIN)?;
        let tenant_id = auth.0.tenant_id();
        let platform: Platform = sqlx::query_scalar!(
            "SELECT platform FROM sources WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL",
            id.0,
            tenant_id
        )
        .fetch_optional(&state.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("source_not_found", format!("no source {}", id.0)))?
        .parse()
        .map_err(ApiError::internal)?;
        check_texts(&[
            ("name", body.name.value().map(String::as_str)),
            (
                "system_prompt",
                body.system_prompt.value().map(String::as_str),
            ),
        ])?;
        if let Some(secrets) = &body.secrets {
            check_secrets(platform, secrets)?;
        }
        if let MaybeUndefined::Value(reply) = &body.reply {
            check_reply(platform, reply)?;
        }
        let overlap = f64::from(body.secrets_overlap_secs.unwrap_or(86_400));
        let changed = sqlx::query_scalar!(
            r#"WITH changed AS (
                   UPDATE sources SET
                       name = CASE WHEN $3 THEN $4 ELSE name END,
                       system_prompt = CASE WHEN $5 THEN $6 ELSE system_prompt END,
                       reply_policy = coalesce($7, reply_policy),
                       reply = CASE WHEN $8 THEN $9 ELSE reply END,
                       previous_secrets = CASE WHEN $10::jsonb IS NULL THEN previous_secrets ELSE secrets END,
                       previous_secrets_until = CASE WHEN $10::jsonb IS NULL THEN previous_secrets_until
                                                     ELSE now() + make_interval(secs => $11) END,
                       secrets = coalesce($10, secrets),
                       updated_at = now()
                   WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL
                   RETURNING id
               )
               SELECT count(pg_notify($12, 'source')) AS "n!" FROM changed"#,
            id.0,
            tenant_id,
            !body.name.is_undefined(),
            body.name.value(),
            !body.system_prompt.is_undefined(),
            body.system_prompt.value(),
            body.reply_policy.map(ReplyPolicy::as_str),
            !body.reply.is_undefined(),
            body.reply.value(),
            body.secrets.as_ref(),
            overlap,
            CONFIG_CHANNEL
        )
        .fetch_one(&state.pool)
        .await?;
        if changed == 0 {
            return Err(ApiError::not_found(
                "source_not_found",
                format!("no source {}", id.0),
            ));
        }
        state.directory.invalidate_all();
        let mut source = tenant_sources(&state, tenant_id, Some(id.0))
            .await?
            .pop()
            .ok_or_else(|| {
                ApiError::not_found("source_not_found", format!("no source {}", id.0))
            })?;
        // As on creation, the one answer that shows a new ingest token: the URL to give the platform.
        if let Some(token) = body
            .secrets
            .as_ref()
            .and_then(|secrets| secrets.get(INGEST_TOKEN_FIELD))
            .and_then(JsonValue::as_str)
        {
            source.ingest_url = format!("{}?token={token}", state.ingest_url(id.0));
        }
        Ok(Json(source))
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
