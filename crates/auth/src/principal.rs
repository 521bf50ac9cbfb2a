//! The roles, and who a verified token says is calling.

use serde::{Deserialize, Serialize};

/// What a caller is to the platform. A token names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    /// Works on orders at the centers the token names.
    Technician,
    CenterManager,
    SupportAgent,
    Operator,
    /// Reads histories and exports; changes nothing.
    Auditor,
    /// A carrier reporting scans.
    Carrier,
    /// Another Aftersales service.
    Service,
}

impl Role {
    pub const ALL: [Self; 8] = [
        Self::Customer,
        Self::Technician,
        Self::CenterManager,
        Self::SupportAgent,
        Self::Operator,
        Self::Auditor,
        Self::Carrier,
        Self::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Technician => "technician",
            Self::CenterManager => "center_manager",
            Self::SupportAgent => "support_agent",
            Self::Operator => "operator",
            Self::Auditor => "auditor",
            Self::Carrier => "carrier",
            Self::Service => "service",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == value)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller of one request, from its verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`: the person or service calling.
    pub subject: String,
    pub role: Role,
    /// The customer a support agent acts for, when the token says so.
    pub on_behalf_of: Option<String>,
    /// The service centers a technician or center manager works at.
    pub centers: Vec<String>,
}

impl Principal {
    /// `subject` in `role`, for no one else and at no center.
    pub fn new(subject: impl Into<String>, role: Role) -> Self {
        Self {
            subject: subject.into(),
            role,
            on_behalf_of: None,
            centers: Vec::new(),
        }
    }

    /// The customer whose objects this caller acts on: a customer's own id, or
    /// the customer a support agent acts for.
    pub fn customer(&self) -> Option<&str> {
        if self.role == Role::Customer {
            Some(&self.subject)
        } else {
            self.on_behalf_of.as_deref()
        }
    }

    /// As events record it: `operator:ops-1`, or
    /// `support_agent:agent-7 for customer:c-42` when acting for a customer.
    pub fn actor(&self) -> String {
        match &self.on_behalf_of {
            Some(customer) => format!("{}:{} for customer:{customer}", self.role, self.subject),
            None => format!("{}:{}", self.role, self.subject),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_actors_name_who_acts_for_whom() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("admin"), None);
        let agent = Principal {
            subject: "agent-7".into(),
            role: Role::SupportAgent,
            on_behalf_of: Some("c-42".into()),
            centers: Vec::new(),
        };
        assert_eq!(agent.actor(), "support_agent:agent-7 for customer:c-42");
    }
}
