//! `MattermostClient` team and channel endpoints against httpmock.

mod common;

use common::*;
use httpmock::prelude::*;
use mattermost_tokens::models::{ChannelType, CreateChannel};
use mattermost_tokens::{AccessToken, ChannelId, Error, TeamId, UserId};
use serde_json::json;

#[tokio::test]
async fn add_team_member_posts_team_and_user() {
    let server = MockServer::start_async().await;
    let (team, user) = (id("team"), id("user"));
    let m = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v4/teams/{team}/members"))
                .and(admin_auth)
                .header("content-type", "application/json")
                .json_body(json!({"team_id": team, "user_id": user}));
            then.status(201).json_body(json!({
                "team_id": team,
                "user_id": user,
                "roles": "team_user",
                "delete_at": 0,
                "scheme_user": true
            }));
        })
        .await;
    let tm = client(&server)
        .as_admin()
        .add_team_member(&TeamId::new(team.clone()), &UserId::new(user.clone()))
        .await
        .unwrap();
    m.assert_calls_async(1).await;
    assert_eq!(tm.team_id.as_str(), team);
    assert_eq!(tm.user_id.as_str(), user);
    assert_eq!(tm.roles, "team_user");
}

#[tokio::test]
async fn team_by_name() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v4/teams/name/my-team")
                .and(admin_auth);
            then.status(200).json_body(json!({
                "id": id("team"),
                "name": "my-team",
                "display_name": "My Team",
                "type": "O",
                "allow_open_invite": true
            }));
        })
        .await;
    let t = client(&server)
        .as_admin()
        .team_by_name("my-team")
        .await
        .unwrap();
    m.assert_calls_async(1).await;
    assert_eq!(t.id.as_str(), id("team"));
    assert_eq!(t.display_name, "My Team");
    assert_eq!(t.team_type, "O");
}

fn channel_json(team: &str, name: &str, kind: &str) -> serde_json::Value {
    json!({
        "id": id("chan"),
        "team_id": team,
        "name": name,
        "display_name": "Town",
        "type": kind,
        "purpose": "",
        "header": "",
        "creator_id": id("admin"),
        "total_msg_count": 0
    })
}

#[tokio::test]
async fn create_channel_posts_the_expected_body() {
    let server = MockServer::start_async().await;
    let team = id("team");
    let open = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api/v4/channels")
                .and(admin_auth)
                .json_body(json!({
                    "team_id": team,
                    "name": "town",
                    "display_name": "Town",
                    "type": "O"
                }));
            then.status(201).json_body(channel_json(&team, "town", "O"));
        })
        .await;
    let private = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api/v4/channels")
                .and(admin_auth)
                .json_body(json!({
                    "team_id": team,
                    "name": "secret",
                    "display_name": "Secret",
                    "type": "P",
                    "purpose": "p",
                    "header": "h"
                }));
            then.status(201)
                .json_body(channel_json(&team, "secret", "P"));
        })
        .await;
    let c = client(&server);
    let ch = c
        .as_admin()
        .create_channel(&CreateChannel {
            team_id: TeamId::new(team.clone()),
            name: "town".into(),
            display_name: "Town".into(),
            channel_type: ChannelType::Open,
            purpose: String::new(),
            header: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(ch.id.as_str(), id("chan"));
    assert_eq!(ch.channel_type, ChannelType::Open);
    assert_eq!(ch.team_id.as_str(), team);
    let ch = c
        .as_admin()
        .create_channel(&CreateChannel {
            team_id: TeamId::new(team.clone()),
            name: "secret".into(),
            display_name: "Secret".into(),
            channel_type: ChannelType::Private,
            purpose: "p".into(),
            header: "h".into(),
        })
        .await
        .unwrap();
    assert_eq!(ch.channel_type, ChannelType::Private);
    open.assert_calls_async(1).await;
    private.assert_calls_async(1).await;
}

#[tokio::test]
async fn create_channel_duplicate_is_already_exists() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/api/v4/channels");
            then.status(400).json_body(app_error(
                "store.sql_channel.save_channel.exists.app_error",
                "A channel with that name already exists on the same team.",
                400,
                "rq",
            ));
        })
        .await;
    let e = client(&server)
        .as_admin()
        .create_channel(&CreateChannel {
            team_id: TeamId::new(id("team")),
            name: "town".into(),
            display_name: "Town".into(),
            channel_type: ChannelType::Open,
            purpose: String::new(),
            header: String::new(),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists(_)), "{e:?}");
    assert!(!e.is_email_exists() && !e.is_username_exists());
}

#[tokio::test]
async fn channel_by_name() {
    let server = MockServer::start_async().await;
    let team = id("team");
    let m = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(format!("/api/v4/teams/{team}/channels/name/town-square"))
                .and(user_auth);
            then.status(200)
                .json_body(channel_json(&team, "town-square", "O"));
        })
        .await;
    let ch = client(&server)
        .as_user(AccessToken::new(USER_TOKEN))
        .channel_by_name(&TeamId::new(team.clone()), "town-square")
        .await
        .unwrap();
    assert_eq!(ch.name, "town-square");
    m.assert_calls_async(1).await;
}

#[tokio::test]
async fn channel_by_name_missing_is_not_found() {
    let server = MockServer::start_async().await;
    let team = id("team");
    server
        .mock_async(|when, then| {
            when.path(format!("/api/v4/teams/{team}/channels/name/nope"));
            then.status(404).json_body(app_error(
                "app.channel.get_by_name.missing.app_error",
                "Channel does not exist.",
                404,
                "rq",
            ));
        })
        .await;
    let e = client(&server)
        .as_admin()
        .channel_by_name(&TeamId::new(team), "nope")
        .await
        .unwrap_err();
    assert!(e.is_not_found());
}

#[tokio::test]
async fn join_channel_goes_out_with_the_users_token() {
    let server = MockServer::start_async().await;
    let (chan, user) = (id("chan"), id("user"));
    let m = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v4/channels/{chan}/members"))
                .and(user_auth)
                .json_body(json!({"user_id": user}));
            then.status(201).json_body(json!({
                "channel_id": chan,
                "user_id": user,
                "roles": "channel_user",
                "msg_count": 0
            }));
        })
        .await;
    let cm = client(&server)
        .as_user(AccessToken::new(USER_TOKEN))
        .add_channel_member(&ChannelId::new(chan.clone()), &UserId::new(user.clone()))
        .await
        .unwrap();
    m.assert_calls_async(1).await;
    assert_eq!(cm.channel_id.as_str(), chan);
    assert_eq!(cm.user_id.as_str(), user);
    assert_eq!(cm.roles, "channel_user");
}

#[tokio::test]
async fn add_channel_members_posts_user_ids() {
    let server = MockServer::start_async().await;
    let chan = id("chan");
    let (a, b) = (id("a"), id("b"));
    let m = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v4/channels/{chan}/members"))
                .and(admin_auth)
                .json_body(json!({"user_ids": [a, b]}));
            then.status(201).json_body(json!([
                {"channel_id": chan, "user_id": a},
                {"channel_id": chan, "user_id": b}
            ]));
        })
        .await;
    let c = client(&server);
    let ms = c
        .as_admin()
        .add_channel_members(
            &ChannelId::new(chan.clone()),
            &[UserId::new(a.clone()), UserId::new(b.clone())],
        )
        .await
        .unwrap();
    assert_eq!(ms.len(), 2);
    assert_eq!(ms[1].user_id.as_str(), b);
    m.assert_calls_async(1).await;
    // 0 and 1001 users are refused without a request.
    let ch = ChannelId::new(chan.clone());
    assert!(matches!(
        c.as_admin().add_channel_members(&ch, &[]).await,
        Err(Error::InvalidInput(_))
    ));
    let many: Vec<UserId> = (0..1001).map(|_| UserId::new(a.clone())).collect();
    assert!(matches!(
        c.as_admin().add_channel_members(&ch, &many).await,
        Err(Error::InvalidInput(_))
    ));
    m.assert_calls_async(1).await;
}

#[tokio::test]
async fn team_and_channel_calls_refuse_malformed_ids() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200).json_body(json!({}));
        })
        .await;
    let c = client(&server);
    let a = c.as_admin();
    let (good_team, good_user, good_chan) = (
        TeamId::new(id("team")),
        UserId::new(id("user")),
        ChannelId::new(id("chan")),
    );
    for bad in ["", "..", "../members", "Team000000000000000000000A"] {
        let r = a.add_team_member(&TeamId::new(bad), &good_user).await;
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{bad}");
        let r = a.add_team_member(&good_team, &UserId::new(bad)).await;
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{bad}");
        let r = a.channel_by_name(&TeamId::new(bad), "town").await;
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{bad}");
        let r = a
            .create_channel(&CreateChannel {
                team_id: TeamId::new(bad),
                name: "town".into(),
                display_name: "Town".into(),
                channel_type: ChannelType::Open,
                purpose: String::new(),
                header: String::new(),
            })
            .await;
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{bad}");
        let r = a.add_channel_member(&ChannelId::new(bad), &good_user).await;
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{bad}");
        let r = a.add_channel_member(&good_chan, &UserId::new(bad)).await;
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{bad}");
        let r = a
            .add_channel_members(&ChannelId::new(bad), std::slice::from_ref(&good_user))
            .await;
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{bad}");
    }
    any.assert_calls_async(0).await;
}
