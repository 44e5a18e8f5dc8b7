//! The notifications' HTTP sink: posts an envelope of events to an endpoint, as registry:2's
//! `httpSink` does (one POST, `Content-Type` the envelope's media type or CloudEvents' batch, the endpoint's headers, its
//! timeout around the whole exchange; only a 2xx answer is a delivery; redirects are not followed).
//! The same pooled hyper client on rustls as the pull-through cache's, with the system's CAs.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use hyper::{Method, Request};
use registry::BoxError;
use registry::notify::{Endpoint, Sink};

use crate::SettingsError;
use crate::client::{PostingClient, posting_client};

/// Most bytes of an answer read (and then dropped): receivers answer with a status, not a body.
const MAX_ANSWER: usize = 64 * 1024;

/// Posts envelopes over HTTP(S). Cheap to share behind an `Arc`.
pub struct HttpSink {
    client: PostingClient,
    user_agent: HeaderValue,
}

impl HttpSink {
    /// A client trusting the system's CAs; `user_agent` names berth in each request.
    pub fn new(user_agent: &str) -> Result<HttpSink, SettingsError> {
        let user_agent = HeaderValue::from_str(user_agent).map_err(|_| SettingsError::UserAgent)?;
        Ok(HttpSink {
            client: posting_client()?,
            user_agent,
        })
    }
}

#[async_trait::async_trait]
impl Sink for HttpSink {
    async fn post(
        &self,
        endpoint: &Endpoint,
        content_type: &'static str,
        body: String,
    ) -> Result<(), BoxError> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(endpoint.url.as_str())
            .header(CONTENT_TYPE, content_type)
            .header(USER_AGENT, self.user_agent.clone());
        for (name, value) in &endpoint.headers {
            req = req.header(
                HeaderName::from_bytes(name.as_bytes())?,
                HeaderValue::from_str(value)?,
            );
        }
        let req = req.body(Full::new(Bytes::from(body)))?;
        let exchange = async {
            let resp = self.client.request(req).await?;
            let status = resp.status();
            // Read what little the receiver said, so the connection can be reused.
            let _ = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("{} answered {status}", endpoint.url).into())
            }
        };
        match tokio::time::timeout(endpoint.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "{} did not answer within {:?}",
                endpoint.url, endpoint.timeout
            )
            .into()),
        }
    }
}
