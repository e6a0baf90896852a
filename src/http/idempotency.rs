//! `Idempotency-Key` (SPEC section 3). Scope is (tenant, key). A write handler runs its work
//! inside [`Idempotency::run`], which calls `begin` first inside the transaction and `finish`
//! last, so the key record commits or rolls back with the domain and outbox rows:
//!
//! - same key, same method, path and body: the stored status and body are replayed byte for
//!   byte with `Idempotent-Replayed: true`;
//! - same key, another request: 422 `ERR_CPAAS_IDEMPOTENCY_KEY_REUSED`;
//! - same key while the first request is still in its transaction: 409
//!   `ERR_CPAAS_DUPLICATE_REQUEST` (a transaction-scoped advisory lock tells).
//!
//! Failed requests store nothing, so a client may retry them with the same key.

use std::future::{Ready, ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse};
use chrono::{Duration, Utc};
use diesel_async::AsyncPgConnection;
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::{DbPool, idempotency_keys, tx};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::envelope::{Meta, Page, render_envelope};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The longest key taken.
pub const KEY_MAX_LEN: usize = 255;
/// What a key is made of: visible ASCII characters (as a JSON Schema pattern).
pub const KEY_PATTERN: &str = "^[!-~]+$";
/// How long keys are kept.
pub const RETENTION_HOURS: i64 = 24;
/// The scope of keys sent to internal endpoints (no tenant).
pub const INTERNAL_SCOPE: Uuid = Uuid::nil();

/// Digest of method, path and body, computed by `fingerprint_requests`.
#[derive(Clone, Debug)]
struct Fingerprint(Vec<u8>);

/// Middleware: for a mutating request that carries an `Idempotency-Key`, reads the body once,
/// fingerprints it, and hands the same bytes on to the handler.
pub async fn fingerprint_requests(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mutating = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if mutating && req.headers().contains_key(HEADER) {
        let mut payload = req.take_payload();
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk?;
            if body.len() + chunk.len() > crate::http::envelope::JSON_LIMIT_BYTES {
                return Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    "the request body is too large",
                )
                .into());
            }
            body.extend_from_slice(&chunk);
        }
        let body: Bytes = body.freeze();
        let mut hash = Sha256::new();
        hash.update(req.method().as_str().as_bytes());
        hash.update(b"\n");
        hash.update(req.path().as_bytes());
        hash.update(b"\n");
        hash.update(&body);
        req.extensions_mut()
            .insert(Fingerprint(hash.finalize().to_vec()));
        let (_, mut restored) = actix_http::h1::Payload::create(true);
        restored.unread_data(body);
        req.set_payload(restored.into());
    }
    next.call(req).await
}

/// The key of this request, if it sent one.
#[derive(Clone, Debug)]
pub struct Idempotency {
    key: Option<KeyedRequest>,
    /// Seals stored answers that carry a secret.
    cipher: Option<crate::crypto::CredentialCipher>,
    /// Wakes the drainers once a write (and the events it wrote) has committed.
    wakeup: Option<std::sync::Arc<crate::outbox::Wakeup>>,
}

/// What a sealed stored answer starts with (a JSON envelope never starts with a NUL byte).
const SEALED_MARKER: &[u8] = b"\0sealed:v1\0";

/// The associated data of a sealed answer: its scope and key, so a sealed body copied under
/// another key does not open.
fn sealing_aad(scope: Uuid, key: &str) -> Vec<u8> {
    format!("idempotency:{scope}:{key}").into_bytes()
}

impl Idempotency {
    fn cipher(&self) -> ApiResult<&crate::crypto::CredentialCipher> {
        self.cipher
            .as_ref()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no cipher to seal the answer")))
    }
}

#[derive(Clone, Debug)]
struct KeyedRequest {
    key: String,
    method: String,
    path: String,
    fingerprint: Vec<u8>,
}

/// What a mutating handler answers: fresh, or replayed from the key's record.
pub struct Reply {
    status: StatusCode,
    body: Vec<u8>,
    replayed: bool,
    headers: Vec<(&'static str, String)>,
    /// The work wrote high-lane events (not stored for replays).
    urgent: bool,
}

impl Reply {
    /// Adds response headers (not stored for replays).
    pub fn with_headers(mut self, headers: &[(&'static str, String)]) -> Self {
        self.headers.extend(headers.iter().cloned());
        self
    }
}

impl actix_web::Responder for Reply {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        builder.content_type("application/json");
        if self.replayed {
            builder.insert_header(("idempotent-replayed", "true"));
        }
        for header in self.headers {
            builder.insert_header(header);
        }
        builder.body(self.body)
    }
}

fn parse(req: &HttpRequest) -> ApiResult<Idempotency> {
    let state = req.app_data::<actix_web::web::Data<crate::state::AppState>>();
    let wakeup = state.map(|s| s.wakeup.clone());
    let Some(value) = req.headers().get(HEADER) else {
        return Ok(Idempotency {
            key: None,
            cipher: None,
            wakeup,
        });
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| {
            !k.is_empty() && k.len() <= KEY_MAX_LEN && k.chars().all(|c| c.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::invalid_field(
                "Idempotency-Key",
                format!("must be 1 to {KEY_MAX_LEN} visible ASCII characters"),
            )
        })?;
    let fingerprint = req
        .extensions()
        .get::<Fingerprint>()
        .map(|f| f.0.clone())
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("idempotency fingerprint missing")))?;
    Ok(Idempotency {
        key: Some(KeyedRequest {
            key: key.to_owned(),
            method: req.method().as_str().to_owned(),
            path: req.path().to_owned(),
            fingerprint,
        }),
        cipher: state.map(|s| s.cipher.clone()),
        wakeup,
    })
}

impl FromRequest for Idempotency {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse(req))
    }
}

/// What a keyed write handler's work answers, before it is rendered (and stored).
pub struct Answer<T> {
    status: StatusCode,
    data: T,
    headers: Vec<(&'static str, String)>,
    sealed: bool,
    urgent: bool,
}

impl<T> Answer<T> {
    pub fn new(status: StatusCode, data: T) -> Self {
        Self {
            status,
            data,
            headers: Vec::new(),
            sealed: false,
            urgent: false,
        }
    }

    /// Marks an answer whose work wrote high-lane events: once committed, the drainers are
    /// woken for an express claim (`Wakeup::committed_urgent`).
    pub fn urgent(mut self, urgent: bool) -> Self {
        self.urgent = urgent;
        self
    }

    /// Marks an answer that carries a secret (a webhook's signing secret): its stored copy
    /// under the key is sealed with the credential cipher, as the secret itself is.
    pub fn sealed(mut self) -> Self {
        self.sealed = true;
        self
    }

    /// 200.
    pub fn ok(data: T) -> Self {
        Self::new(StatusCode::OK, data)
    }

    /// 201.
    pub fn created(data: T) -> Self {
        Self::new(StatusCode::CREATED, data)
    }

    /// 202.
    pub fn accepted(data: T) -> Self {
        Self::new(StatusCode::ACCEPTED, data)
    }

    /// Response headers sent with this answer but not stored for replays.
    pub fn with_headers(mut self, headers: &[(&'static str, String)]) -> Self {
        self.headers.extend(headers.iter().cloned());
        self
    }
}

impl Idempotency {
    /// Whether the request carried a key.
    pub fn is_keyed(&self) -> bool {
        self.key.is_some()
    }

    /// The one shape of a keyed write: a connection, a transaction, the key's lock and replay
    /// check, the handler's `work`, and its answer stored under the key, all committed together
    /// (or not at all: a failed request stores nothing).
    pub async fn run<T: Serialize>(
        &self,
        pool: &DbPool,
        scope: Uuid,
        meta: &Meta,
        work: impl AsyncFnOnce(&mut AsyncPgConnection) -> ApiResult<Answer<T>>,
    ) -> ApiResult<Reply> {
        let mut conn = pool.get().await?;
        self.in_transaction(&mut conn, scope, meta, work).await
    }

    /// The transaction of a keyed write: the key's lock and replay check, the work, its answer
    /// stored under the key; once committed, the drainers are woken.
    async fn in_transaction<T: Serialize>(
        &self,
        conn: &mut AsyncPgConnection,
        scope: Uuid,
        meta: &Meta,
        work: impl AsyncFnOnce(&mut AsyncPgConnection) -> ApiResult<Answer<T>>,
    ) -> ApiResult<Reply> {
        let reply = tx::run(conn, async |conn| {
            if let Some(replay) = self.begin(conn, scope).await? {
                return Ok(replay);
            }
            let answer = work(conn).await?;
            let mut reply = self.finish(conn, scope, meta, &answer).await?;
            reply.urgent = answer.urgent;
            Ok::<_, ApiError>(reply.with_headers(&answer.headers))
        })
        .await?;
        Ok(self.committed(reply))
    }

    /// After a write committed (not a replay): wakes the drainers for the events it wrote.
    fn committed(&self, reply: Reply) -> Reply {
        if !reply.replayed
            && let Some(wakeup) = &self.wakeup
        {
            if reply.urgent {
                wakeup.committed_urgent();
            } else {
                wakeup.committed();
            }
        }
        reply
    }

    /// [`Idempotency::run`] for work that a shared limit admits first: `admit` runs on the
    /// same connection before the transaction (a limit's statement must not hold its row for
    /// the transaction's length), and a request whose answer is already stored under its key
    /// is replayed without being admitted again, so a replay is not counted twice.
    pub async fn run_admitted<T: Serialize, A>(
        &self,
        pool: &DbPool,
        scope: Uuid,
        meta: &Meta,
        admit: impl AsyncFnOnce(&mut AsyncPgConnection) -> ApiResult<A>,
        work: impl AsyncFnOnce(&mut AsyncPgConnection, A) -> ApiResult<Answer<T>>,
    ) -> ApiResult<Reply> {
        let mut conn = pool.get().await?;
        if let Some(replay) = self.stored(&mut conn, scope).await? {
            return Ok(replay);
        }
        let admitted = admit(&mut conn).await?;
        self.in_transaction(&mut conn, scope, meta, async |conn| {
            work(conn, admitted).await
        })
        .await
    }

    /// [`Idempotency::run_admitted`] for work whose writes are one statement (atomic on its
    /// own): with a key, the same; without one, no transaction is opened around it, which
    /// saves the `BEGIN` and `COMMIT` round trips of every unkeyed send.
    pub async fn run_admitted_atomic<T: Serialize, A>(
        &self,
        pool: &DbPool,
        scope: Uuid,
        meta: &Meta,
        admit: impl AsyncFnOnce(&mut AsyncPgConnection) -> ApiResult<A>,
        work: impl AsyncFnOnce(&mut AsyncPgConnection, A) -> ApiResult<Answer<T>>,
    ) -> ApiResult<Reply> {
        if self.is_keyed() {
            return self.run_admitted(pool, scope, meta, admit, work).await;
        }
        let mut conn = pool.get().await?;
        let admitted = admit(&mut conn).await?;
        let answer = work(&mut conn, admitted).await?;
        let mut reply = Self::unkeyed(meta, answer.status, &answer.data)?;
        reply.urgent = answer.urgent;
        Ok(self.committed(reply.with_headers(&answer.headers)))
    }

    /// The keyed-write frame for work that takes its own connections and commits as it goes
    /// (a drain, a job): it is not atomic with the key. With a key, the key's transaction stays
    /// open around the whole work, so a duplicate arriving meanwhile gets 409
    /// `ERR_CPAAS_DUPLICATE_REQUEST` instead of a second run, and one arriving after gets the
    /// stored answer; a failed run stores nothing, so a retry runs it again. Without a key there
    /// is nothing to record, and no connection is held while the work runs.
    pub async fn run_detached<T: Serialize>(
        &self,
        pool: &DbPool,
        scope: Uuid,
        meta: &Meta,
        work: impl AsyncFnOnce() -> ApiResult<Answer<T>>,
    ) -> ApiResult<Reply> {
        if !self.is_keyed() {
            let answer = work().await?;
            let reply = Self::unkeyed(meta, answer.status, &answer.data)?;
            return Ok(reply.with_headers(&answer.headers));
        }
        self.run(pool, scope, meta, async |_conn| work().await)
            .await
    }

    /// The answer to a request without a key: rendered and stored nowhere, so it needs no
    /// connection.
    fn unkeyed<T: Serialize>(meta: &Meta, status: StatusCode, data: &T) -> ApiResult<Reply> {
        let body = render_envelope(data, None, meta).map_err(ApiError::internal)?;
        Ok(Reply {
            status,
            body,
            replayed: false,
            headers: Vec::new(),
            urgent: false,
        })
    }

    /// Call first, inside the transaction. `Some(reply)` is the stored answer to return as is.
    async fn begin(&self, conn: &mut AsyncPgConnection, scope: Uuid) -> ApiResult<Option<Reply>> {
        let Some(k) = &self.key else {
            return Ok(None);
        };
        if !idempotency_keys::try_lock(conn, scope, &k.key).await? {
            return Err(ApiError::new(
                ErrorCode::DuplicateRequest,
                "a request with this Idempotency-Key is still being processed; retry shortly",
            ));
        }
        self.stored(conn, scope).await
    }

    /// The stored answer to this request's key, if one is stored: `Some(reply)` to return as
    /// is; an error when the key was used for another request.
    async fn stored(&self, conn: &mut AsyncPgConnection, scope: Uuid) -> ApiResult<Option<Reply>> {
        let Some(k) = &self.key else {
            return Ok(None);
        };
        match idempotency_keys::find_live(conn, scope, &k.key).await? {
            None => Ok(None),
            Some(s)
                if s.method == k.method && s.path == k.path && s.fingerprint == k.fingerprint =>
            {
                let body = match s.response_body.strip_prefix(SEALED_MARKER) {
                    Some(sealed) => self
                        .cipher()?
                        .open(sealed, &sealing_aad(scope, &k.key))
                        .map_err(ApiError::internal)?,
                    None => s.response_body,
                };
                Ok(Some(Reply {
                    status: StatusCode::from_u16(s.status_code as u16).unwrap_or(StatusCode::OK),
                    body,
                    replayed: true,
                    headers: Vec::new(),
                    urgent: false,
                }))
            }
            Some(_) => Err(ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was used for a different request",
            )),
        }
    }

    /// Call last, inside the transaction: renders the envelope and, for a keyed request,
    /// stores it under the key (sealed when the answer says so).
    async fn finish<T: Serialize>(
        &self,
        conn: &mut AsyncPgConnection,
        scope: Uuid,
        meta: &Meta,
        answer: &Answer<T>,
    ) -> ApiResult<Reply> {
        let status = answer.status;
        let body = render_envelope(&answer.data, None::<Page>, meta).map_err(ApiError::internal)?;
        if let Some(k) = &self.key {
            let stored = if answer.sealed {
                let sealed = self
                    .cipher()?
                    .seal(&body, &sealing_aad(scope, &k.key))
                    .map_err(ApiError::internal)?;
                [SEALED_MARKER, sealed.as_slice()].concat()
            } else {
                body.clone()
            };
            let answer = idempotency_keys::NewAnswer {
                tenant_id: scope,
                key: &k.key,
                method: &k.method,
                path: &k.path,
                fingerprint: &k.fingerprint,
                status_code: i32::from(status.as_u16()),
                response_body: &stored,
                expires_at: Utc::now() + Duration::hours(RETENTION_HOURS),
            };
            idempotency_keys::store(conn, &answer).await?;
        }
        Ok(Reply {
            status,
            body,
            replayed: false,
            headers: Vec::new(),
            urgent: false,
        })
    }
}
