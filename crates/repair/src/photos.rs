//! Photos of a device's condition, kept with its order: their bytes in the
//! service's database under their SHA-256, which the check-in event names, so
//! the order's hash chain covers what each photo showed.

use aftersales_core::{Error, ErrorKind};
use aftersales_eventstore::{
    AnyEventStore, EventStore as _, StoreError, on_connection, on_read_pool,
};
use sha2::Digest as _;
use sqlx::Row as _;

use crate::app::AppResult;

/// The largest photo (a phone's camera compressed for the record; a gRPC
/// request holds at most 1 MiB).
pub const MAX_PHOTO_BYTES: usize = 768 * 1024;
/// The most photos one order keeps: what one check-in may name.
#[allow(clippy::cast_possible_wrap)] // 8
pub const MAX_PHOTOS: i64 = crate::domain::order::MAX_PHOTOS as i64;

/// A kept photo's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    pub photo_id: String,
    pub content_type: &'static str,
    pub size: u64,
}

/// What the bytes are, whatever they were said to be: JPEG, PNG or WebP.
pub fn sniff(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if data.len() >= 12 && data.starts_with(b"RIFF") && &data[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// The photo's id: its SHA-256, hex.
pub fn photo_id(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

/// Checks `data` against what it was said to be and the limits; the photo it
/// would be kept as.
pub fn check(declared: &str, data: &[u8]) -> AppResult<Photo> {
    if data.is_empty() || data.len() > MAX_PHOTO_BYTES {
        return Err(Error::invalid(
            "data",
            format!("a photo of 1 byte to {} KiB", MAX_PHOTO_BYTES / 1024),
        ));
    }
    let Some(content_type) = sniff(data) else {
        return Err(Error::invalid("data", "not a JPEG, PNG or WebP image"));
    };
    if declared != content_type {
        return Err(Error::invalid(
            "content_type",
            format!("the bytes are {content_type}, not {declared:?}"),
        ));
    }
    Ok(Photo {
        photo_id: photo_id(data),
        content_type,
        size: data.len() as u64,
    })
}

/// Keeps `data` with `order_id` (once, however often it is attached), unless
/// the order has its most photos already.
pub async fn attach(
    store: &AnyEventStore,
    order_id: &str,
    photo: &Photo,
    data: &[u8],
    at: chrono::DateTime<chrono::Utc>,
) -> AppResult<()> {
    let size = i64::try_from(photo.size).unwrap_or(i64::MAX);
    let mut tx = store.begin().await?;
    let inserted = on_connection!(tx.connection(), c => {
        // Counted and inserted in one statement: a full order takes no more.
        sqlx::query(
            "INSERT INTO order_photos (order_id, photo_id, content_type, size, data, attached_at) \
             SELECT $1, $2, $3, $4, $5, $6 \
             WHERE (SELECT COUNT(*) FROM order_photos WHERE order_id = $1) < $7 \
             ON CONFLICT (order_id, photo_id) DO NOTHING",
        )
        .bind(order_id.to_owned())
        .bind(photo.photo_id.clone())
        .bind(photo.content_type)
        .bind(size)
        .bind(data.to_vec())
        .bind(at.to_rfc3339())
        .bind(MAX_PHOTOS)
        .execute(c)
        .await
        .map_err(StoreError::from)?
        .rows_affected()
    });
    tx.commit().await?;
    if inserted == 0 && !attached(store, order_id).await?.contains(&photo.photo_id) {
        return Err(Error::new(
            ErrorKind::ResourceExhausted,
            format!("an order keeps at most {MAX_PHOTOS} photos"),
        ));
    }
    Ok(())
}

/// The ids of the photos kept with `order_id`.
pub async fn attached(store: &AnyEventStore, order_id: &str) -> Result<Vec<String>, StoreError> {
    let sql =
        "SELECT photo_id FROM order_photos WHERE order_id = $1 ORDER BY attached_at, photo_id";
    Ok(on_read_pool!(store, pool => {
        sqlx::query_scalar(sql)
            .bind(order_id.to_owned())
            .fetch_all(pool)
            .await?
    }))
}

/// A kept photo: its content type and bytes.
pub async fn get(
    store: &AnyEventStore,
    order_id: &str,
    photo_id: &str,
) -> Result<Option<(String, Vec<u8>)>, StoreError> {
    let sql = "SELECT content_type, data FROM order_photos WHERE order_id = $1 AND photo_id = $2";
    on_read_pool!(store, pool => {
        let row = sqlx::query(sql)
            .bind(order_id.to_owned())
            .bind(photo_id.to_owned())
            .fetch_optional(pool)
            .await?;
        row.map(|row| Ok((row.try_get("content_type")?, row.try_get("data")?)))
            .transpose()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_photo_is_what_its_bytes_say() {
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0, 0];
        assert_eq!(
            check("image/jpeg", &jpeg).unwrap().content_type,
            "image/jpeg"
        );
        assert!(check("image/png", &jpeg).is_err(), "declared otherwise");
        assert!(check("image/jpeg", b"<svg onload=alert(1)>").is_err());
        assert!(check("image/jpeg", &[]).is_err());
        let mut big = vec![0xFF, 0xD8, 0xFF];
        big.resize(MAX_PHOTO_BYTES + 1, 0);
        assert!(check("image/jpeg", &big).is_err());
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(photo_id(b"abc").len(), 64);
    }
}
