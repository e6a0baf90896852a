//! Roles and plan tiers carried by access tokens.

use std::str::FromStr;

/// A role from the token's `roles` claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    User,
    Organizer,
    Developer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Organizer => "organizer",
            Role::Developer => "developer",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "organizer" => Ok(Role::Organizer),
            "developer" => Ok(Role::Developer),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?}; expected user, organizer, developer or admin"
            )),
        }
    }
}

/// What a set of roles allows (SPEC section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Read messages and opt-out status.
    Read,
    /// Send, and manage templates, opt-outs and webhooks.
    Send,
    /// Everything, including providers and usage.
    Admin,
}

impl Permission {
    /// Whether any of `roles` grants this permission.
    pub fn granted_by(self, roles: &[Role]) -> bool {
        roles.iter().any(|role| {
            matches!(
                (self, role),
                (_, Role::Admin)
                    | (Permission::Read, _)
                    | (Permission::Send, Role::Organizer | Role::Developer)
            )
        })
    }
}

/// The tenant's plan, from the token's `planTier`; unknown tiers are `Free`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlanTier {
    Free,
    Starter,
    Professional,
    Business,
    Enterprise,
}

impl PlanTier {
    /// Reads a tier name; an unknown name is treated as `Free`.
    pub fn from_claim(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "starter" => PlanTier::Starter,
            "professional" => PlanTier::Professional,
            "business" => PlanTier::Business,
            "enterprise" => PlanTier::Enterprise,
            _ => PlanTier::Free,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PlanTier::Free => "free",
            PlanTier::Starter => "starter",
            PlanTier::Professional => "professional",
            PlanTier::Business => "business",
            PlanTier::Enterprise => "enterprise",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_reads_but_does_not_send() {
        assert!(Permission::Read.granted_by(&[Role::User]));
        assert!(!Permission::Send.granted_by(&[Role::User]));
        assert!(!Permission::Admin.granted_by(&[Role::User]));
    }

    #[test]
    fn developers_and_organizers_send_but_only_admins_administer() {
        for role in [Role::Developer, Role::Organizer] {
            assert!(Permission::Send.granted_by(&[role]));
            assert!(!Permission::Admin.granted_by(&[role]));
        }
        assert!(Permission::Admin.granted_by(&[Role::Admin]));
        assert!(Permission::Send.granted_by(&[Role::Admin]));
    }

    #[test]
    fn an_unknown_tier_is_free() {
        assert_eq!(PlanTier::from_claim("platinum"), PlanTier::Free);
        assert_eq!(PlanTier::from_claim("Business"), PlanTier::Business);
    }
}
