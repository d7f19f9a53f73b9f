//! The small HTML pages of the redeem route. They load nothing from
//! elsewhere and run no script: a page that submitted itself would let a mail
//! scanner that runs scripts burn the code.

use std::fmt;

/// The headers every response of the redeem route carries, confirm page,
/// redirect and error pages alike (names in lowercase, as HTTP/2 sends
/// them):
/// - `Referrer-Policy: no-referrer`: the page's URL holds the code; the
///   browser must not send it on to Mattermost or anywhere else.
/// - `Cache-Control: no-store`: no cache, shared or private, keeps a page
///   holding the code or a response setting the token cookie.
pub const RESPONSE_HEADERS: [(&str, &str); 2] = [
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
];

/// The headers of the HTML pages on top of [`RESPONSE_HEADERS`]: the content
/// type, and a content security policy that loads nothing and forbids
/// framing (a framed confirm page could be clicked through by a page the
/// user did not mean to trust).
pub const PAGE_HEADERS: [(&str, &str); 4] = [
    ("content-type", "text/html; charset=utf-8"),
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
];

/// The start of every page, up to its `<title>`.
macro_rules! head {
    () => {
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:30rem;margin:4rem auto;padding:0 1rem;text-align:center;line-height:1.5}button{font-size:1rem;padding:.6rem 1.4rem;cursor:pointer}</style>
"#
    };
}

/// The page answering an invalid, expired or already used link (status 400
/// from the router). It says the same whatever the reason.
pub const INVALID_LINK_PAGE: &str = concat!(
    head!(),
    "<title>Link expired</title>\n</head>\n<body>\n<h1>This link no longer works</h1>\n",
    "<p>Sign-in links work once and only for a few minutes. Go back to the app and open Mattermost from there again.</p>\n",
    "</body>\n</html>\n"
);

#[cfg(feature = "axum")]
pub(super) const ERROR_PAGE: &str = concat!(
    head!(),
    "<title>Sign-in failed</title>\n</head>\n<body>\n<h1>Could not sign you in to Mattermost</h1>\n",
    "<p>Please try again from the app in a moment.</p>\n",
    "</body>\n</html>\n"
);

/// The confirm page for a valid code: a form that posts the code back to the
/// redeem route. Opening the link shows this page and uses nothing up; the
/// code is spent only when the user presses the button.
///
/// The HTML holds the code, so `Debug` does not show it. Serve it with
/// [`PAGE_HEADERS`] and [`RESPONSE_HEADERS`] (see
/// [`headers`](Self::headers)).
pub struct ConfirmPage {
    html: String,
}

impl fmt::Debug for ConfirmPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConfirmPage([REDACTED])")
    }
}

impl ConfirmPage {
    pub(super) fn new(action: &str, code: &str) -> Self {
        let mut html = String::from(head!());
        html.push_str(&format!(
            "<title>Continue to Mattermost</title>\n</head>\n<body>\n\
             <h1>Continue to Mattermost</h1>\n\
             <p>Press the button to sign in to Mattermost. The link works once.</p>\n\
             <form method=\"post\" action=\"{}\">\n\
             <input type=\"hidden\" name=\"code\" value=\"{}\">\n\
             <button type=\"submit\">Continue to Mattermost</button>\n\
             </form>\n</body>\n</html>\n",
            escape(action),
            escape(code),
        ));
        ConfirmPage { html }
    }

    /// The page's HTML (it holds the code).
    pub fn html(&self) -> &str {
        &self.html
    }

    /// The page's HTML (it holds the code).
    pub fn into_html(self) -> String {
        self.html
    }

    /// All headers to send with the page: [`PAGE_HEADERS`] and
    /// [`RESPONSE_HEADERS`].
    pub fn headers() -> impl Iterator<Item = (&'static str, &'static str)> {
        PAGE_HEADERS.into_iter().chain(RESPONSE_HEADERS)
    }
}

/// Escapes text for an HTML attribute value or element content.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_attributes() {
        let p = ConfirmPage::new("/a\"b", "<x>");
        assert!(p.html().contains("action=\"/a&quot;b\""));
        assert!(p.html().contains("value=\"&lt;x&gt;\""));
        assert_eq!(format!("{p:?}"), "ConfirmPage([REDACTED])");
    }
}
