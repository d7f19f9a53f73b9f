//! Teams and team memberships.

use mattermost_tokens::ids::{TeamId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Data, new_id};
use crate::clock::now_ms;

/// A team. The state file holds it as is; the API sees [`Team::to_json`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Team {
    pub id: TeamId,
    pub name: String,
    pub display_name: String,
    pub open: bool,
    pub create_at: i64,
    pub invite_id: String,
}

impl Team {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "create_at": self.create_at,
            "update_at": self.create_at,
            "delete_at": 0,
            "display_name": self.display_name,
            "name": self.name,
            "description": "",
            "email": "",
            "type": if self.open { "O" } else { "I" },
            "company_name": "",
            "allowed_domains": "",
            "invite_id": self.invite_id,
            "allow_open_invite": self.open,
            "scheme_id": null,
            "group_constrained": false,
            "policy_id": null,
        })
    }
}

#[derive(Clone, Debug)]
pub(crate) struct TeamMember {
    pub scheme_admin: bool,
    pub create_at: i64,
}

pub(crate) fn team_member_json(team_id: &TeamId, user_id: &UserId, m: &TeamMember) -> Value {
    json!({
        "team_id": team_id,
        "user_id": user_id,
        "roles": if m.scheme_admin { "team_user team_admin" } else { "team_user" },
        "delete_at": 0,
        "scheme_guest": false,
        "scheme_user": true,
        "scheme_admin": m.scheme_admin,
        "explicit_roles": "",
        "create_at": m.create_at,
    })
}

impl Data {
    pub fn add_team(&mut self, name: &str, display_name: &str, open: bool) -> TeamId {
        if let Some(id) = self.team_by_name.get(name) {
            return id.clone();
        }
        let id = TeamId::new(new_id());
        self.teams.insert(
            id.clone(),
            Team {
                id: id.clone(),
                name: name.to_owned(),
                display_name: display_name.to_owned(),
                open,
                create_at: now_ms(),
                invite_id: new_id(),
            },
        );
        self.team_by_name.insert(name.to_owned(), id.clone());
        id
    }

    pub fn team_by_name(&self, name: &str) -> Option<&Team> {
        self.team_by_name
            .get(name)
            .and_then(|id| self.teams.get(id))
    }

    pub fn is_team_member(&self, team_id: &TeamId, user_id: &UserId) -> bool {
        self.team_members
            .contains_key(&(team_id.clone(), user_id.clone()))
    }

    /// Adds a team member, or returns the existing membership.
    pub fn add_team_member(
        &mut self,
        team_id: &TeamId,
        user_id: &UserId,
        admin: bool,
    ) -> &TeamMember {
        self.team_members
            .entry((team_id.clone(), user_id.clone()))
            .or_insert_with(|| TeamMember {
                scheme_admin: admin,
                create_at: now_ms(),
            })
    }
}
