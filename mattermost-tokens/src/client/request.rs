//! [`Request`]: one API request, described before it is sent.

use reqwest::Method;
use serde::Serialize;

use crate::error::Error;

/// One API request, described before it is sent. Its `Debug` leaves out the
/// body (a create-user body carries a password).
pub(crate) struct Request {
    pub(super) method: Method,
    pub(super) path: Vec<String>,
    pub(super) query: Vec<(&'static str, String)>,
    /// Shared, so a retry sends it again without a copy.
    pub(super) body: Option<bytes::Bytes>,
    /// Safe to repeat after a 5xx or a broken connection.
    pub(super) idempotent: bool,
    /// The response may carry a token: never show its body.
    pub(super) sensitive: bool,
    pub(super) auth: bool,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("endpoint", &self.endpoint())
            .field("body_bytes", &self.body.as_ref().map(bytes::Bytes::len))
            .field("idempotent", &self.idempotent)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// The endpoint as a template: `/api/v4/users/{}/tokens`. Segments that
    /// are not plain lowercase words (ids, emails, usernames with dots or
    /// digits) read `{}`, so spans and metrics group by endpoint and carry
    /// no value from the path.
    pub(crate) fn endpoint(&self) -> String {
        let mut out = String::from("/api/v4");
        for s in &self.path {
            out.push('/');
            let word = s.len() <= 20 && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            out.push_str(if word { s } else { "{}" });
        }
        out
    }

    pub(super) fn new(method: Method, path: &[&str]) -> Self {
        let idempotent = method != Method::POST;
        Request {
            method,
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            query: Vec::new(),
            body: None,
            idempotent,
            sensitive: false,
            auth: true,
        }
    }

    pub(crate) fn get(path: &[&str]) -> Self {
        Self::new(Method::GET, path)
    }

    pub(crate) fn post(path: &[&str]) -> Self {
        Self::new(Method::POST, path)
    }

    pub(crate) fn put(path: &[&str]) -> Self {
        Self::new(Method::PUT, path)
    }

    pub(crate) fn delete(path: &[&str]) -> Self {
        Self::new(Method::DELETE, path)
    }

    pub(crate) fn json(mut self, body: &impl Serialize) -> Result<Self, Error> {
        self.body = Some(
            serde_json::to_vec(body)
                .map_err(|e| Error::InvalidInput(format!("cannot encode the request: {e}")))?
                .into(),
        );
        Ok(self)
    }

    pub(crate) fn query(mut self, k: &'static str, v: impl ToString) -> Self {
        self.query.push((k, v.to_string()));
        self
    }

    /// Marks a POST as safe to repeat (it changes nothing when repeated).
    pub(crate) fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    pub(crate) fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    pub(super) fn no_auth(mut self) -> Self {
        self.auth = false;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A create-user body carries a password, a create-token answer a token:
    /// `Debug` shows the body's size, never its bytes, nor ids in the path.
    #[test]
    fn debug_leaves_out_the_body_and_path_values() {
        let req = Request::post(&["users", "8xqpzj5f1bnbmgzuyb4hs7rwxa", "tokens"])
            .json(&serde_json::json!({"password": "hunter2-s3cret", "email": "ana@example.com"}))
            .unwrap();
        let shown = format!("{req:?}");
        for secret in [
            "hunter2-s3cret",
            "ana@example.com",
            "8xqpzj5f1bnbmgzuyb4hs7rwxa",
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("body_bytes"), "{shown}");
        assert!(shown.contains("/api/v4/users/{}/tokens"), "{shown}");
    }
}
