//! Writing answers: JSON objects, `Status` errors, and streamed bodies (watches, logs),
//! as kube-apiserver's response writers do.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::Value;

use crate::error::Error;

/// Every response body: whole or streamed.
pub type Body = BoxBody<Bytes, Infallible>;

/// A JSON response.
pub fn json_response(code: u16, v: &Value) -> Response<Body> {
    json_typed(code, v, "application/json")
}

pub fn json_typed(code: u16, v: &Value, content_type: &'static str) -> Response<Body> {
    let body = serde_json::to_vec(v).expect("a JSON value always serialises");
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// An error as a `Status` body (with `Retry-After` when the client should retry).
pub fn error_response(e: &Error) -> Response<Body> {
    let mut r = json_response(
        e.code(),
        &serde_json::to_value(e.to_status()).unwrap_or_default(),
    );
    if let Error::TooManyRequests = e {
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    r
}

/// A streamed body from a channel of chunks (a watch).
pub fn streamed(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let frames = tokio_stream::StreamExt::map(stream, |b| Ok::<_, Infallible>(Frame::data(b)));
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
