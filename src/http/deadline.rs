//! Request bodies must arrive in time: a client that sends its headers and then stalls
//! (or trickles) its body would otherwise hold a connection, and a descriptor, forever.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpMessage as _;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use futures_util::Stream;

use crate::http::error::{ApiError, ErrorCode};

/// The body's stream, cut off at a deadline: after it, the next read fails, and `expired`
/// says so to the middleware that answers.
struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: Rc<Cell<bool>>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired.set(true);
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body did not arrive in time",
            )))));
        }
        Poll::Pending
    }
}

/// Gives every request body `timeout` to arrive (from when its headers did). A body that
/// is late is answered 408 `REQUEST_TIMEOUT` and its connection is closed, whatever the
/// handler made of the failed read.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    timeout: Duration,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let expired = Rc::new(Cell::new(false));
    let inner = req.take_payload();
    if matches!(inner, Payload::None) {
        // No body to wait for.
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    req.set_payload(Payload::Stream {
        payload: Box::pin(Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            expired: expired.clone(),
        }),
    });
    let response = next.call(req).await?;
    if !expired.get() {
        return Ok(response.map_into_left_body());
    }
    let (req, _) = response.into_parts();
    let error = ApiError::new(
        ErrorCode::RequestTimeout,
        format!(
            "the request body did not arrive within {} s",
            timeout.as_secs_f64()
        ),
    );
    let mut late = actix_web::ResponseError::error_response(&error);
    late.head_mut().set_connection_type(ConnectionType::Close);
    Ok(ServiceResponse::new(req, late).map_into_right_body())
}
