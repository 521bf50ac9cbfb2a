//! Who may call each RPC, as data: `policy.toml`, read once.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::principal::{Principal, Role};
use crate::verify::AuthError;

/// What a role must own or be assigned to, beyond holding the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Object {
    Any,
    OwnCustomer,
    OwnDevice,
    OwnOrder,
    OwnShipment,
    OwnNotification,
    OwnCenter,
    /// A support case held (now or before) by the agent's team: the support
    /// service checks it, as the teams are its data.
    OwnTeam,
}

/// For every RPC (`package.Service/Method`), each role allowed and its object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: BTreeMap<String, BTreeMap<Role, Object>>,
    /// RPCs anyone may call without a token: published information only.
    public: std::collections::BTreeSet<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("policy: {0}")]
pub struct PolicyError(String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    public: Vec<String>,
    rpc: BTreeMap<String, BTreeMap<Role, Object>>,
}

impl Policy {
    /// The platform's policy, `policy.toml` beside this crate.
    pub fn builtin() -> Result<Self, PolicyError> {
        Self::parse(include_str!("../policy.toml"))
    }

    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let file: File = toml::from_str(text).map_err(|e| PolicyError(e.to_string()))?;
        for (method, roles) in &file.rpc {
            let well_formed = method
                .split_once('/')
                .is_some_and(|(service, name)| service.contains('.') && !name.is_empty());
            if !well_formed {
                return Err(PolicyError(format!(
                    "{method:?} is not package.Service/Method"
                )));
            }
            if roles.is_empty() {
                return Err(PolicyError(format!("{method} allows no role")));
            }
        }
        if let Some(stray) = file.public.iter().find(|m| !file.rpc.contains_key(*m)) {
            return Err(PolicyError(format!(
                "public {stray} has no [rpc] entry saying what each role may do"
            )));
        }
        Ok(Self {
            rules: file.rpc,
            public: file.public.into_iter().collect(),
        })
    }

    /// Every RPC the policy names.
    pub fn methods(&self) -> impl Iterator<Item = &str> {
        self.rules.keys().map(String::as_str)
    }

    /// Whether `method` answers callers without a token.
    pub fn is_public(&self, method: &str) -> bool {
        self.public.contains(method)
    }

    /// The roles allowed to call `method`, with their objects.
    pub fn rule(&self, method: &str) -> Option<&BTreeMap<Role, Object>> {
        self.rules.get(method)
    }

    /// Whether `principal` may call `method` at all, and if so on which objects.
    /// An RPC with no entry is refused to everyone.
    pub fn authorize(&self, method: &str, principal: &Principal) -> Result<Object, AuthError> {
        self.rule(method)
            .and_then(|roles| roles.get(&principal.role))
            .copied()
            .ok_or_else(|| {
                AuthError::PermissionDenied(format!("a {} may not call {method}", principal.role))
            })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prost::Message as _;

    use super::*;

    /// Every RPC of every service in `proto/`, as `package.Service/Method`.
    fn rpcs() -> BTreeSet<String> {
        let set = prost_types::FileDescriptorSet::decode(aftersales_proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set decodes");
        set.file
            .iter()
            .flat_map(|file| {
                file.service.iter().flat_map(move |service| {
                    service.method.iter().map(move |method| {
                        format!("{}.{}/{}", file.package(), service.name(), method.name())
                    })
                })
            })
            .collect()
    }

    #[test]
    fn every_rpc_has_a_rule_and_every_rule_an_rpc() {
        let policy = Policy::builtin().unwrap();
        let rpcs = rpcs();
        assert!(rpcs.len() > 50, "{rpcs:?}");
        let missing: Vec<_> = rpcs.iter().filter(|m| policy.rule(m).is_none()).collect();
        assert!(
            missing.is_empty(),
            "RPCs with no entry in policy.toml (open to no one until they have one): {missing:?}"
        );
        let unknown: Vec<_> = policy
            .methods()
            .filter(|m| !rpcs.contains(*m) && !m.starts_with("grpc.reflection."))
            .collect();
        assert!(unknown.is_empty(), "entries naming no RPC: {unknown:?}");
    }

    #[test]
    fn only_published_information_answers_without_a_token() {
        let policy = Policy::builtin().unwrap();
        assert!(policy.is_public("aftersales.parts.v1.PartsService/GetRepairPriceList"));
        assert!(!policy.is_public("aftersales.parts.v1.PartsService/GetStock"));
        let stray = "public = [\"a.B/C\"]\n[rpc.\"a.B/D\"]\noperator = \"any\"\n";
        assert!(
            Policy::parse(stray)
                .unwrap_err()
                .to_string()
                .contains("a.B/C")
        );
    }

    #[test]
    fn roles_are_refused_what_the_table_does_not_give_them() {
        let policy = Policy::builtin().unwrap();
        let caller = |role| Principal::new("x", role);
        let claim = "aftersales.warranty.v1.WarrantyService/RecordClaim";
        assert_eq!(
            policy.authorize(claim, &caller(Role::Service)).unwrap(),
            Object::Any
        );
        for role in Role::ALL.into_iter().filter(|r| *r != Role::Service) {
            assert!(policy.authorize(claim, &caller(role)).is_err(), "{role}");
        }
        let scan = "aftersales.logistics.v1.LogisticsService/RecordTrackingEvent";
        assert!(policy.authorize(scan, &caller(Role::Customer)).is_err());
        assert_eq!(
            policy
                .authorize(
                    "aftersales.repair.v1.RepairService/GetRepair",
                    &caller(Role::Customer)
                )
                .unwrap(),
            Object::OwnOrder
        );
        // The auditor changes nothing: every RPC open to auditors only reads.
        for method in policy.methods() {
            let name = method.rsplit('/').next().unwrap_or_default();
            if policy.rule(method).unwrap().contains_key(&Role::Auditor) {
                assert!(
                    [
                        "Get", "List", "Verify", "Check", "Find", "Watch", "Search", "Export"
                    ]
                    .iter()
                    .any(|read| name.starts_with(read)),
                    "auditors may call {method}"
                );
            }
        }
        assert!(
            policy
                .authorize("x.Y/Unknown", &caller(Role::Operator))
                .is_err()
        );
    }

    #[test]
    fn a_malformed_policy_is_refused() {
        assert!(Policy::parse("[rpc.\"NoSlash\"]\noperator = \"any\"\n").is_err());
        assert!(Policy::parse("[rpc.\"a.B/C\"]\nadmin = \"any\"\n").is_err());
        assert!(Policy::parse("[rpc.\"a.B/C\"]\noperator = \"everything\"\n").is_err());
        assert!(Policy::parse("[rpc.\"a.B/C\"]\n").is_err());
    }
}
