//! Cursor pagination: `?limit=` (1..=200, default 50) and an opaque `?cursor=`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::http::error::ApiError;
use crate::model::TenantId;

/// Page parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page; empty or absent for the first page.
    pub cursor: Option<String>,
}

/// Page parameters of an admin list that spans tenants.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantPageQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page; empty or absent for the first page.
    pub cursor: Option<String>,
    /// Only this tenant's items. Admins of `default` see every tenant without it; other
    /// admins see only their own (another tenant answers 404).
    #[param(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    pub tenant: Option<String>,
}

impl TenantPageQuery {
    /// The page and the tenant asked for.
    pub fn parse(&self) -> Result<(PageRequest, Option<TenantId>), ApiError> {
        let page = PageQuery {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
        .parse()?;
        let tenant = self.tenant.as_deref().map(TenantId::parse).transpose()?;
        Ok((page, tenant))
    }
}

/// Parsed page parameters.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// Items per page.
    pub limit: i64,
    /// Position: the id of the last item of the previous page.
    pub after: Option<String>,
}

impl PageRequest {
    /// The position as a UUID, for lists keyed by one.
    pub fn after_uuid(&self) -> Result<Option<Uuid>, ApiError> {
        self.after
            .as_deref()
            .map(|a| Uuid::parse_str(a).map_err(|_| ApiError::invalid_request("invalid cursor")))
            .transpose()
    }
}

impl PageQuery {
    /// Checks the limit and decodes the cursor.
    pub fn parse(&self) -> Result<PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::invalid_request("limit must be from 1 to 200"));
        }
        let after = self
            .cursor
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(decode_cursor)
            .transpose()?;
        Ok(PageRequest { limit, after })
    }
}

/// Encodes the position after the item with key `id`.
pub fn encode_cursor(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// Decodes a cursor made by [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .filter(|bytes| !bytes.is_empty() && bytes.len() <= 256)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| ApiError::invalid_request("invalid cursor"))
}

/// Splits `limit + 1` fetched items into a page and the cursor of the next one.
pub fn split_page<T>(
    mut items: Vec<T>,
    limit: i64,
    id: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if items.len() > limit {
        items.truncate(limit);
        let next = items.last().map(|last| encode_cursor(&id(last)));
        (items, next)
    } else {
        (items, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn cursors_round_trip_and_garbage_never_panics(id in "[a-z0-9-]{1,63}", junk in "\\PC*") {
            prop_assert_eq!(decode_cursor(&encode_cursor(&id)).unwrap(), id);
            let _ = decode_cursor(&junk);
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = Uuid::now_v7().to_string();
        assert_eq!(decode_cursor(&encode_cursor(&id)).unwrap(), id);
        for bad in ["", "!!", "__8", &"A".repeat(500)] {
            assert!(decode_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_full_page_has_a_next_cursor() {
        let ids: Vec<String> = (0..3).map(|_| Uuid::now_v7().to_string()).collect();
        let (page, next) = split_page(ids.clone(), 2, Clone::clone);
        assert_eq!(page.len(), 2);
        assert_eq!(next, Some(encode_cursor(&ids[1])));
        let (page, next) = split_page(ids, 3, Clone::clone);
        assert_eq!((page.len(), next), (3, None));
    }
}
