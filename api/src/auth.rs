//! Who is calling: tenant API keys (`sk_…`, stored as SHA-256 only), JWTs (HS256 or RS256, the
//! algorithm pinned), and the admin token. Comparisons of secrets are constant-time.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use poem::Request;
use poem_openapi::{auth::Bearer, SecurityScheme};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use tokio::sync::OwnedSemaphorePermit;

use crate::{admission, directory::TenantRecord, error::ApiError, AppState};

/// A caller authenticated as a tenant.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: Arc<TenantRecord>,
    /// `key:<prefix>` for API keys, the JWT's `sub` otherwise.
    pub subject: String,
    pub role: Option<String>,
    /// The bearer credential, to check again during a long poll or a stream: a revoked key or a
    /// suspended tenant ends them within seconds.
    pub credential: Credential,
    /// The request's place among the tenant's requests in flight ([`crate::admission::InFlight`]);
    /// a long poll gives it up while it waits.
    pub in_flight: Option<Arc<OwnedSemaphorePermit>>,
}

impl Principal {
    pub fn tenant_id(&self) -> Uuid {
        self.tenant.id
    }
}

/// A bearer credential, kept out of every log line.
#[derive(Clone, Default)]
pub struct Credential(Arc<str>);

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// `Authorization: Bearer <api key or JWT>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_tenant")]
pub struct TenantAuth(pub Principal);

/// `Authorization: Bearer <SENTINEL_ADMIN_TOKEN>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_admin")]
pub struct AdminAuth(pub ());

fn state(req: &Request) -> poem::Result<&Arc<AppState>> {
    req.data::<Arc<AppState>>().ok_or_else(|| {
        poem::Error::from_string(
            "application state missing",
            poem::http::StatusCode::INTERNAL_SERVER_ERROR,
        )
    })
}

/// Every tenant-authenticated endpoint goes through here: the credential is checked, then the
/// request spends one token of the tenant's request budget and takes one of its places in flight.
async fn check_tenant(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let state = state(req)?;
    let mut principal = state.authenticate(&bearer.token).await?;
    admission::spend_request(&principal.tenant).await?;
    principal.in_flight = Some(Arc::new(
        state.in_flight.enter(principal.tenant_id()).await?,
    ));
    Ok(principal)
}

async fn check_admin(req: &Request, bearer: Bearer) -> poem::Result<()> {
    let state = state(req)?;
    let Some(expected) = state.config.admin_token.as_deref() else {
        return Err(ApiError::unauthorized(
            "admin_disabled",
            "the admin API is disabled: set SENTINEL_ADMIN_TOKEN",
        )
        .into());
    };
    if bool::from(bearer.token.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("invalid_admin_token", "the admin token is not valid").into())
    }
}

/// A new API key: what the tenant is shown once, and what is stored.
pub struct NewApiKey {
    pub key: String,
    pub prefix: String,
    pub secret_sha256: Vec<u8>,
}

pub fn generate_api_key() -> NewApiKey {
    let mut prefix = [0u8; 6];
    let mut secret = [0u8; 24];
    rand::rng().fill_bytes(&mut prefix);
    rand::rng().fill_bytes(&mut secret);
    let prefix = hex::encode(prefix);
    let key = format!("sk_{prefix}_{}", hex::encode(secret));
    let secret_sha256 = Sha256::digest(key.as_bytes()).to_vec();
    NewApiKey {
        key,
        prefix,
        secret_sha256,
    }
}

/// How JWTs are checked.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    tenant_id: Uuid,
    #[serde(default)]
    role: Option<String>,
}

impl JwtVerifier {
    pub fn hs256(secret: &[u8], issuer: Option<&str>, audience: Option<&str>) -> Self {
        Self::with(
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
            issuer,
            audience,
        )
    }

    pub fn rs256(
        public_key_pem: &[u8],
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> anyhow::Result<Self> {
        let key = DecodingKey::from_rsa_pem(public_key_pem).map_err(|error| {
            anyhow::anyhow!("SENTINEL_JWT_PUBLIC_KEY is not an RSA public key in PEM: {error}")
        })?;
        Ok(Self::with(key, Algorithm::RS256, issuer, audience))
    }

    fn with(
        key: DecodingKey,
        algorithm: Algorithm,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Self {
        // One algorithm only: a token signed with any other (or with "none") is refused.
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        if let Some(issuer) = issuer {
            validation.set_issuer(&[issuer]);
        }
        match audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        Self { key, validation }
    }

    fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| {
                ApiError::unauthorized("invalid_token", format!("the JWT is not valid: {error}"))
            })
    }
}

impl AppState {
    /// Resolves a bearer credential to an active tenant.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, ApiError> {
        let (tenant_id, subject, role) = if let Some(rest) = token.strip_prefix("sk_") {
            let prefix = rest.split('_').next().unwrap_or_default();
            let invalid = || {
                ApiError::unauthorized("invalid_api_key", "the API key is not valid or was revoked")
            };
            if prefix.is_empty() || prefix.len() > 32 {
                return Err(invalid());
            }
            let record = self.directory.key(prefix).await?.ok_or_else(invalid)?;
            let digest = Sha256::digest(token.as_bytes());
            if !bool::from(digest.as_slice().ct_eq(&record.secret_sha256)) {
                return Err(invalid());
            }
            (record.tenant_id, format!("key:{prefix}"), None)
        } else if token.matches('.').count() == 2 {
            let verifier = self.jwt.as_ref().ok_or_else(|| {
                ApiError::unauthorized(
                    "jwt_disabled",
                    "JWTs are not accepted: no SENTINEL_JWT_SECRET or SENTINEL_JWT_PUBLIC_KEY",
                )
            })?;
            let claims = verifier.verify(token)?;
            (claims.tenant_id, claims.sub, claims.role)
        } else {
            return Err(ApiError::unauthorized(
                "invalid_credentials",
                "Authorization must be `Bearer sk_…` (an API key) or `Bearer <JWT>`",
            ));
        };
        let tenant = self.directory.tenant(tenant_id).await?.ok_or_else(|| {
            ApiError::unauthorized("unknown_tenant", "the credential names no tenant")
        })?;
        if !tenant.active {
            return Err(ApiError::forbidden(
                "tenant_suspended",
                "the tenant is suspended",
            ));
        }
        Ok(Principal {
            tenant,
            subject,
            role,
            credential: Credential(Arc::from(token)),
            in_flight: None,
        })
    }

    /// Checks a principal's credential again (from the caches, which a revocation or a suspension
    /// invalidates): the error to end a long poll or a stream with, once it is no longer valid.
    pub async fn reauthenticate(&self, principal: &Principal) -> Result<(), ApiError> {
        self.authenticate(&principal.credential.0).await.map(drop)
    }
}
