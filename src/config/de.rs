//! The TOML shape of the config. Sections and `[defaults]` keys named after
//! kinds come from the kinds table, so they are hand-read here; they behave
//! as `#[serde(deny_unknown_fields)]` structs would, down to the wording and
//! position of the error for a mistyped key.

use super::{Config, Defaults, Kind};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::marker::PhantomData;
use std::sync::LazyLock;

/// The keys one table accepts.
trait Keys: Sized {
    /// All of them, in the order an error lists them.
    fn names() -> &'static [&'static str];
    fn parse(name: &str) -> Option<Self>;
}

/// A key of table `K`. An unknown one fails while the key is read, so the
/// error points at the key itself, as a derived struct's does.
struct Key<K>(K);

impl<'de, K: Keys> Deserialize<'de> for Key<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<K>(PhantomData<K>);
        impl<K: Keys> Visitor<'_> for V<K> {
            type Value = Key<K>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("field identifier")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<K>, E> {
                K::parse(s)
                    .map(Key)
                    .ok_or_else(|| E::unknown_field(s, K::names()))
            }
        }
        d.deserialize_identifier(V(PhantomData))
    }
}

enum Section {
    Defaults,
    Audit,
    Targets(Kind),
    Notify,
    Limits,
    Freeze,
    Plan,
    Approval,
    Approvals,
}

static SECTIONS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let kinds = Kind::ALL.iter().map(|k| k.name());
    ["defaults", "audit"]
        .into_iter()
        .chain(kinds)
        .chain([
            "notify",
            "limits",
            "freeze",
            "plan",
            "approval",
            "approvals",
        ])
        .collect()
});

impl Keys for Section {
    fn names() -> &'static [&'static str] {
        &SECTIONS
    }
    fn parse(name: &str) -> Option<Section> {
        match name {
            "defaults" => Some(Section::Defaults),
            "audit" => Some(Section::Audit),
            "notify" => Some(Section::Notify),
            "limits" => Some(Section::Limits),
            "freeze" => Some(Section::Freeze),
            "plan" => Some(Section::Plan),
            "approval" => Some(Section::Approval),
            "approvals" => Some(Section::Approvals),
            _ => Kind::parse(name).map(Section::Targets),
        }
    }
}

impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Config;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("struct Config")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Config, A::Error> {
                let mut cfg = Config::default();
                while let Some(Key(section)) = map.next_key::<Key<Section>>()? {
                    match section {
                        Section::Defaults => cfg.defaults = map.next_value()?,
                        Section::Audit => cfg.audit = map.next_value()?,
                        Section::Targets(kind) => {
                            cfg.targets.insert(kind, map.next_value()?);
                        }
                        Section::Notify => cfg.notify = map.next_value()?,
                        Section::Limits => cfg.policy.limits = map.next_value()?,
                        Section::Freeze => {
                            cfg.policy.freeze =
                                map.next_value::<crate::policy::freeze::Windows>()?.0
                        }
                        Section::Plan => {
                            cfg.policy.plan_ttl = map.next_value::<crate::policy::PlanConfig>()?.ttl
                        }
                        Section::Approval => cfg.policy.approval = map.next_value()?,
                        Section::Approvals => cfg.policy.approvals = map.next_value()?,
                    }
                }
                Ok(cfg)
            }
        }
        d.deserialize_struct("Config", Section::names(), V)
    }
}

#[derive(Clone, Copy)]
enum DefaultsKey {
    Target(Kind),
    Timeout,
    MaxOperations,
    MaxMemory,
    PgConnectTimeout,
    PgStatementTimeout,
    PgMaxTerminate,
}

/// The `[defaults]` keys that are not kinds.
const SETTINGS: [(&str, DefaultsKey); 6] = [
    ("timeout", DefaultsKey::Timeout),
    ("max_operations", DefaultsKey::MaxOperations),
    ("max_memory", DefaultsKey::MaxMemory),
    ("pg_connect_timeout", DefaultsKey::PgConnectTimeout),
    ("pg_statement_timeout", DefaultsKey::PgStatementTimeout),
    ("pg_max_terminate", DefaultsKey::PgMaxTerminate),
];

static DEFAULTS_KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let kinds = Kind::ALL.iter().map(|k| k.name());
    kinds.chain(SETTINGS.iter().map(|(n, _)| *n)).collect()
});

impl Keys for DefaultsKey {
    fn names() -> &'static [&'static str] {
        &DEFAULTS_KEYS
    }
    fn parse(name: &str) -> Option<DefaultsKey> {
        match SETTINGS.iter().find(|(n, _)| *n == name) {
            Some((_, key)) => Some(*key),
            None => Kind::parse(name).map(DefaultsKey::Target),
        }
    }
}

impl<'de> Deserialize<'de> for Defaults {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Defaults;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("struct Defaults")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Defaults, A::Error> {
                let mut d = Defaults::default();
                while let Some(Key(key)) = map.next_key::<Key<DefaultsKey>>()? {
                    match key {
                        DefaultsKey::Target(kind) => {
                            d.targets.insert(kind, map.next_value()?);
                        }
                        DefaultsKey::Timeout => d.timeout = Some(map.next_value()?),
                        DefaultsKey::MaxOperations => d.max_operations = Some(map.next_value()?),
                        DefaultsKey::MaxMemory => {
                            #[derive(Deserialize)]
                            #[serde(untagged)]
                            enum Size {
                                Bytes(u64),
                                Text(String),
                            }
                            d.max_memory = Some(match map.next_value()? {
                                Size::Bytes(n) => n,
                                Size::Text(t) => crate::engine::memory::parse_size(&t)
                                    .map_err(serde::de::Error::custom)?,
                            });
                        }
                        DefaultsKey::PgConnectTimeout => {
                            d.pg_connect_timeout = Some(map.next_value()?)
                        }
                        DefaultsKey::PgStatementTimeout => {
                            d.pg_statement_timeout = Some(map.next_value()?)
                        }
                        DefaultsKey::PgMaxTerminate => d.pg_max_terminate = Some(map.next_value()?),
                    }
                }
                Ok(d)
            }
        }
        d.deserialize_struct("Defaults", DefaultsKey::names(), V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(toml: &str) -> String {
        match toml::from_str::<Config>(toml) {
            Ok(c) => panic!("{toml:?} parsed: {c:?}"),
            Err(e) => e.message().to_string(),
        }
    }

    #[test]
    fn the_shape_users_write_reads_into_the_kinds() {
        let cfg: Config = toml::from_str(
            "[defaults]\npg = \"prod\"\ntimeout = \"5s\"\npg_max_terminate = 3\n\
             [audit]\npath = \"/a.jsonl\"\n\
             [pg.prod]\nurl = \"postgres://h/db\"\n[pg.staging]\nurl = \"postgres://s/db\"\n\
             [redis.cache]\nurl = \"redis://c\"\n\
             [notify.ops]\nwebhook_url = \"https://hook\"\n",
        )
        .unwrap();
        assert_eq!(cfg.target_names(Kind::Pg), ["prod", "staging"]);
        assert_eq!(cfg.target_names(Kind::Redis), ["cache"]);
        assert!(cfg.target_names(Kind::Prom).is_empty());
        assert_eq!(cfg.default_name(Kind::Pg).map(String::as_str), Some("prod"));
        assert_eq!(cfg.default_name(Kind::Redis), None);
        assert_eq!(
            (
                cfg.defaults.timeout.as_deref(),
                cfg.defaults.pg_max_terminate
            ),
            (Some("5s"), Some(3))
        );
        assert_eq!(
            cfg.audit.path.as_deref(),
            Some(std::path::Path::new("/a.jsonl"))
        );
        assert_eq!(
            cfg.notify["ops"].webhook_url.as_deref(),
            Some("https://hook")
        );
    }

    #[test]
    fn every_kind_has_a_section_and_a_default() {
        for kind in Kind::ALL {
            let name = kind.name();
            let cfg: Config = toml::from_str(&format!(
                "[defaults]\n{name} = \"main\"\n[{name}.main]\nurl = \"x://h\"\n"
            ))
            .unwrap_or_else(|e| panic!("[defaults] {name}: {e}"));
            assert_eq!(cfg.default_name(kind).map(String::as_str), Some("main"));
            assert_eq!(cfg.target_names(kind), ["main"], "{name}");
            for other in Kind::ALL.into_iter().filter(|k| *k != kind) {
                assert_eq!(cfg.default_name(other), None, "{name} set {other:?}");
                assert!(cfg.target_names(other).is_empty(), "{name} set {other:?}");
            }
        }
    }

    #[test]
    fn unknown_fields_rejected() {
        assert_eq!(
            parse_err("[pg.x]\nurll = \"a\"\n"),
            "unknown field `urll`, expected one of `url`, `url_env`, `password_env`, \
             `password_file`, `bearer_env`, `bearer_file`, `ca_file`, `protected`, \
             `description`, `context`, `namespace`, `kubeconfig`"
        );
    }

    #[test]
    fn typos_in_kind_names_are_rejected_with_what_is_accepted() {
        // Pinned wording; the kinds come from the table so a new row needs
        // no edit here.
        let kinds: Vec<String> = Kind::ALL
            .iter()
            .map(|k| format!("`{}`", k.name()))
            .collect();
        let kinds = kinds.join(", ");
        assert_eq!(
            parse_err("[pgg.x]\nurl = \"a\"\n"),
            format!("unknown field `pgg`, expected one of `defaults`, `audit`, {kinds}, `notify`, `limits`, `freeze`, `plan`, `approval`, `approvals`")
        );
        assert_eq!(
            parse_err("[defaults]\npgg = \"x\"\n"),
            format!(
                "unknown field `pgg`, expected one of {kinds}, `timeout`, `max_operations`, `max_memory`, \
                 `pg_connect_timeout`, `pg_statement_timeout`, `pg_max_terminate`"
            )
        );
        assert!(kinds.starts_with("`pg`, `redis`, `prom`, `kube`, `alertmanager`"));
        // The error points at the mistyped key, so `opsh` can say where.
        let e = toml::from_str::<Config>("[defaults]\npgg = \"x\"\n").unwrap_err();
        assert_eq!(e.span(), Some(11..14));
    }

    #[test]
    fn wrong_types_are_rejected() {
        assert_eq!(
            parse_err("[defaults]\npg = 1\n"),
            "invalid type: integer `1`, expected a string"
        );
        assert_eq!(
            parse_err("defaults = 1\n"),
            "invalid type: integer `1`, expected struct Defaults"
        );
        assert_eq!(
            parse_err("[pg]\nx = 1\n"),
            "invalid type: integer `1`, expected struct TargetConfig"
        );
    }
}
