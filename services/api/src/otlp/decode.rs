//! OTLP/HTTP bodies in and out: `application/x-protobuf` or
//! `application/json`, optionally `Content-Encoding: gzip`; the response in
//! the request's encoding (OTLP/HTTP specification, "Binary Protobuf
//! Encoding" and "JSON Protobuf Encoding").

use std::io::Read;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use flate2::read::GzDecoder;
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ApiError, ErrorBody, ErrorDetail};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

/// Why a body could not be read: each maps to the status the OTLP
/// specification asks for.
#[derive(Debug)]
pub enum BodyError {
    /// 415: a content type or encoding we do not speak.
    Unsupported(String),
    /// 400: not a valid message of the expected type.
    Invalid(String),
    /// 413: over `api.max_body_bytes`, compressed or not.
    TooLarge(String),
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Self::Unsupported(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                m,
            ),
            Self::Invalid(m) => return ApiError::bad_request("invalid_otlp", m).into_response(),
            Self::TooLarge(m) => return ApiError::PayloadTooLarge(m).into_response(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message,
                details: None,
            },
        };
        (status, Json(body)).into_response()
    }
}

/// The body's encoding, from its content type.
pub fn encoding(headers: &HeaderMap) -> Result<Encoding, BodyError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mime = ct.split(';').next().unwrap_or_default().trim();
    match mime.to_ascii_lowercase().as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        other => Err(BodyError::Unsupported(format!(
            "content type {other:?} is not application/x-protobuf or application/json"
        ))),
    }
}

/// The body, decompressed if it says so, at most `limit` bytes either way
/// (a small gzip body may inflate a thousandfold).
pub fn inflate(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, BodyError> {
    if body.len() > limit {
        return Err(BodyError::TooLarge(format!(
            "the body is {} bytes; the limit is {limit}",
            body.len()
        )));
    }
    let enc = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match enc.as_str() {
        "" | "identity" => Ok(body),
        "gzip" => {
            let mut out = Vec::new();
            GzDecoder::new(body.as_ref())
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| BodyError::Invalid(format!("the gzip body is corrupt: {e}")))?;
            if out.len() > limit {
                return Err(BodyError::TooLarge(format!(
                    "the body inflates to more than {limit} bytes"
                )));
            }
            Ok(Bytes::from(out))
        }
        other => Err(BodyError::Unsupported(format!(
            "content encoding {other:?} is not gzip or identity"
        ))),
    }
}

/// Decodes an export request in either encoding.
pub fn decode<T: Message + Default + DeserializeOwned>(
    encoding: Encoding,
    body: &[u8],
) -> Result<T, BodyError> {
    match encoding {
        Encoding::Protobuf => T::decode(body)
            .map_err(|e| BodyError::Invalid(format!("not a valid OTLP protobuf message: {e}"))),
        Encoding::Json => serde_json::from_slice(body)
            .map_err(|e| BodyError::Invalid(format!("not a valid OTLP/JSON message: {e}"))),
    }
}

/// `200 OK` with the export response in the request's encoding.
pub fn respond<T: Message + Serialize>(encoding: Encoding, resp: &T) -> Response {
    match encoding {
        Encoding::Protobuf => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            )],
            resp.encode_to_vec(),
        )
            .into_response(),
        // An unset `partial_success` is left out, not sent as null.
        Encoding::Json => {
            let mut v = serde_json::to_value(resp).unwrap_or_default();
            if let serde_json::Value::Object(m) = &mut v {
                m.retain(|_, v| !v.is_null());
            }
            (StatusCode::OK, Json(v)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn content_types() {
        let h = headers(&[("content-type", "application/x-protobuf")]);
        assert_eq!(encoding(&h).unwrap(), Encoding::Protobuf);
        let h = headers(&[("content-type", "application/json; charset=utf-8")]);
        assert_eq!(encoding(&h).unwrap(), Encoding::Json);
        let h = headers(&[("content-type", "text/plain")]);
        assert!(matches!(encoding(&h), Err(BodyError::Unsupported(_))));
    }

    #[test]
    fn gzip_is_inflated_within_the_limit() {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&[b'a'; 10_000]).unwrap();
        let body = Bytes::from(gz.finish().unwrap());
        let h = headers(&[("content-encoding", "gzip")]);
        assert_eq!(inflate(&h, body.clone(), 10_000).unwrap().len(), 10_000);
        assert!(matches!(
            inflate(&h, body, 9_999),
            Err(BodyError::TooLarge(_))
        ));
        assert!(matches!(
            inflate(&h, Bytes::from_static(b"not gzip"), 100),
            Err(BodyError::Invalid(_))
        ));
        let h = headers(&[("content-encoding", "br")]);
        assert!(matches!(
            inflate(&h, Bytes::from_static(b"x"), 100),
            Err(BodyError::Unsupported(_))
        ));
    }
}
