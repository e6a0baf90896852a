//! Roles and plan tiers carried by access tokens.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Mutex;

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

    /// Case-insensitive: the auth service may send `ADMIN`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
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
    /// A tier name, case-insensitive; `pro` is the auth service's name for professional.
    pub fn known(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "free" => Some(PlanTier::Free),
            "starter" => Some(PlanTier::Starter),
            "professional" | "pro" => Some(PlanTier::Professional),
            "business" => Some(PlanTier::Business),
            "enterprise" => Some(PlanTier::Enterprise),
            _ => None,
        }
    }

    /// Reads a tier name; an unknown name is treated as `Free`.
    pub fn from_claim(s: &str) -> Self {
        Self::known(s).unwrap_or(PlanTier::Free)
    }

    /// The tier of a token's `planTier`: as `from_claim`, and an unknown value is logged once
    /// per value (for the first few distinct values), so a misconfigured auth service shows up
    /// without flooding the log.
    pub fn from_token(s: &str) -> Self {
        if let Some(tier) = Self::known(s) {
            return tier;
        }
        static LOGGED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
        if let Ok(mut logged) = LOGGED.lock()
            && logged.len() < 64
            && logged.insert(s.to_owned())
        {
            tracing::warn!(plan_tier = %s, "unknown planTier in an access token; treated as free");
        }
        PlanTier::Free
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
        assert_eq!(PlanTier::from_token("platinum"), PlanTier::Free);
        assert_eq!(PlanTier::from_claim("Business"), PlanTier::Business);
    }

    #[test]
    fn tiers_and_roles_compare_case_insensitively_and_pro_is_professional() {
        assert_eq!(PlanTier::from_token("PRO"), PlanTier::Professional);
        assert_eq!(PlanTier::from_token("Enterprise"), PlanTier::Enterprise);
        assert_eq!("ADMIN".parse::<Role>(), Ok(Role::Admin));
        assert_eq!("Organizer".parse::<Role>(), Ok(Role::Organizer));
    }
}
