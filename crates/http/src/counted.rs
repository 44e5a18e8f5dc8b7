//! A body wrapper that reports the data bytes passing through it and ends a measurement when the body
//! ends. Shared by the metrics (byte counters, request duration) and the access log (one line per request,
//! written when the response body is done, so it can tell the bytes sent and the whole duration).

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// Wraps `inner`: `on_data` sees the length of every data frame; `guard` is dropped when the body ends,
/// fails, or is dropped unfinished (a client that went away), whichever comes first.
pub struct Counted<F> {
    inner: Body,
    on_data: F,
    guard: Option<Box<dyn Send>>,
}

impl<F: FnMut(u64) + Send + Unpin + 'static> Counted<F> {
    pub fn wrap(inner: Body, on_data: F, guard: Option<Box<dyn Send>>) -> Body {
        Body::new(Counted {
            inner,
            on_data,
            guard,
        })
    }
}

impl<F: FnMut(u64) + Send + Unpin + 'static> http_body::Body for Counted<F> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    (this.on_data)(data.len() as u64);
                }
            }
            // The end, or a failure that ends the body: the request is over.
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => drop(this.guard.take()),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
