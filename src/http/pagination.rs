//! Opaque cursors for keyset pagination over time-ordered ids (newest first).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::envelope::Page;

/// `?limit=&cursor=` of every list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1–100, default 20.
    pub limit: Option<i64>,
    /// From the previous page's `page.next_cursor`.
    pub cursor: Option<String>,
}

/// A validated page request.
#[derive(Clone, Copy, Debug)]
pub struct PageRequest {
    pub limit: i64,
    pub before: Option<Uuid>,
}

const CURSOR_VERSION: u8 = 1;
/// The page size when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 20;
/// The largest `limit` a list takes (the smallest is 1).
pub const MAX_LIMIT: i64 = 100;

impl PageParams {
    /// Checks the limit and decodes the cursor.
    pub fn parse(&self) -> ApiResult<PageRequest> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid_field(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let before = match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(decode_cursor(c).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidCursor,
                    "the cursor is not one this API issued",
                )
            })?),
        };
        Ok(PageRequest { limit, before })
    }
}

fn encode_cursor(id: Uuid) -> String {
    let mut bytes = Vec::with_capacity(17);
    bytes.push(CURSOR_VERSION);
    bytes.extend_from_slice(id.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_cursor(cursor: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    match bytes.split_first() {
        Some((&CURSOR_VERSION, rest)) => Uuid::from_slice(rest).ok(),
        _ => None,
    }
}

impl PageRequest {
    /// Trims the extra row fetched to detect more, and builds the page.
    pub fn finish<T>(&self, mut rows: Vec<T>, id_of: impl Fn(&T) -> Uuid) -> (Vec<T>, Page) {
        let has_more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        let next_cursor = if has_more {
            rows.last().map(|r| encode_cursor(id_of(r)))
        } else {
            None
        };
        (
            rows,
            Page {
                next_cursor,
                has_more,
                limit: self.limit,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id)), Some(id));
        assert_eq!(decode_cursor("bm90IGEgY3Vyc29y"), None);
        let params = PageParams {
            limit: Some(5),
            cursor: Some("%%%".into()),
        };
        assert_eq!(params.parse().unwrap_err().code, ErrorCode::InvalidCursor);
    }

    #[test]
    fn limits_outside_one_to_a_hundred_are_refused() {
        for limit in [0, 101, -1] {
            let params = PageParams {
                limit: Some(limit),
                cursor: None,
            };
            assert_eq!(
                params.parse().unwrap_err().code,
                ErrorCode::ValidationFailed
            );
        }
    }
}
