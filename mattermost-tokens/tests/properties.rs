//! Property tests: username derivation and response parsing never panic and
//! keep their promises on arbitrary input.

use std::net::SocketAddr;

use mattermost_tokens::{
    Error, HostUser, MattermostClient, RetryPolicy, UserId, models::CreateToken, validate_username,
};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn derived_usernames_are_valid_and_deterministic(
        local in "\\PC{0,40}",
        domain in "[a-z]{1,10}\\.[a-z]{2,5}",
        first in "\\PC{0,80}",
        last in "\\PC{0,80}",
        id in any::<i64>(),
    ) {
        let u = HostUser::with_names(id, format!("{local}@{domain}"), first, last);
        match u.username_candidates() {
            Ok(c) => {
                prop_assert!(!c.is_empty());
                for name in &c {
                    prop_assert!(validate_username(name).is_ok(), "{name:?}");
                }
                prop_assert_eq!(c, u.username_candidates().unwrap());
            }
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }

    /// A name in a non-Latin script gives a name from its letters (not the
    /// bare `user` fallback), still valid for Mattermost.
    #[test]
    fn names_in_other_scripts_are_transliterated(
        first in "[А-яα-ω一-龥]{2,12}",
        id in any::<i64>(),
    ) {
        let u = HostUser::with_names(id, "1234@example.com", first.clone(), "");
        let c = u.username_candidates().unwrap();
        prop_assert!(validate_username(&c[0]).is_ok(), "{:?}", c[0]);
        // (`υςэρ` does spell `user`.)
        let spelled = deunicode::deunicode(&first).to_ascii_lowercase();
        prop_assert!(
            !c[0].starts_with("user") || spelled.starts_with("user"),
            "{:?} kept nothing of the name",
            c[0]
        );
    }

    #[test]
    fn explicit_usernames_are_checked(name in "\\PC{0,30}") {
        let u = HostUser::new(1, "a@example.com", "A").username(name.clone());
        match u.username_candidates() {
            Ok(c) => prop_assert_eq!(c, vec![name.trim().to_lowercase()]),
            Err(r) => prop_assert!(r.contains("not valid")),
        }
    }
}

/// A server answering every connection with `status` and `body`.
async fn serve(status: u16, body: Vec<u8>, content_type: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = sock.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    addr
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

const SECRET: &str = "zzsecretzzsecretzzsecret42";

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever a server answers to a token mint, the client returns a value
    /// or a typed error, and the error never shows the token in the body.
    #[test]
    fn any_answer_to_a_mint_is_typed_and_secret_free(
        status in prop::sample::select(vec![200u16, 201, 400, 401, 403, 404, 429, 500, 501, 502, 503]),
        prefix in prop::collection::vec(any::<u8>(), 0..200),
        shape in 0u8..5,
    ) {
        let body = match shape {
            0 => prefix.clone(),
            1 => format!("{{\"id\": 5, \"token\": \"{SECRET}\"}}").into_bytes(),
            2 => format!("{{\"id\": \"abc\", \"token\": \"{SECRET}\"").into_bytes(),
            3 => [prefix.as_slice(), SECRET.as_bytes()].concat(),
            _ => format!("[\"{SECRET}\"]").into_bytes(),
        };
        let res = run(async move {
            let addr = serve(status, body, "application/json").await;
            let c = MattermostClient::builder(&format!("http://{addr}"), "admintoken")
                .retry_policy(RetryPolicy::none())
                .build()
                .unwrap();
            c.as_admin()
                .create_token(
                    &UserId::new("abcdefghijklmnopqrstuvwxyz"),
                    &CreateToken { description: "d".into(), expires_at: None },
                )
                .await
        });
        match res {
            Ok(t) => {
                let shown = format!("{:?}", t);
                prop_assert!(!shown.contains(SECRET));
            }
            Err(e) => {
                prop_assert!(!e.to_string().contains(SECRET), "{e}");
                prop_assert!(!format!("{e:?}").contains(SECRET), "{e:?}");
                prop_assert!(e.status().is_some() || e.is_transport(), "{e:?}");
                if status == 429 {
                    let is_rate_limited = matches!(e, Error::RateLimited { .. });
                    prop_assert!(is_rate_limited);
                }
            }
        }
    }

    /// Arbitrary bodies on a read give a value or a typed error.
    #[test]
    fn any_answer_to_a_read_is_typed(
        status in prop::sample::select(vec![200u16, 400, 404, 500, 502]),
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let res = run(async move {
            let addr = serve(status, body, "text/html").await;
            let c = MattermostClient::builder(&format!("http://{addr}"), "admintoken")
                .retry_policy(RetryPolicy::none())
                .build()
                .unwrap();
            c.as_admin().me().await
        });
        if let Err(e) = res {
            prop_assert!(e.status().is_some() || e.is_transport(), "{e:?}");
            if let Error::BadResponse { snippet, .. } = &e {
                prop_assert!(snippet.chars().count() <= 201);
            }
        }
    }
}
