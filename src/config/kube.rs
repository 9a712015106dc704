//! Kube targets name a kubeconfig context and namespace rather than a URL;
//! modules/k8s reads the kubeconfig (or the in-cluster account) itself.

use super::{paths, Config, ConfigError, Kind, Target};
use std::path::{Path, PathBuf};

/// The context name that stands for the pod's own service account
/// (in-cluster config), in `[kube.NAME] context` and in messages.
pub const IN_CLUSTER: &str = "in-cluster";

/// The kube row's resolver: never fails, since an unknown name is taken as
/// a context for modules/k8s to find (or not) in the kubeconfig.
pub(super) fn resolve(
    cfg: &Config,
    _kind: Kind,
    spec: Option<&str>,
) -> Result<Target, ConfigError> {
    Ok(cfg.resolve_kube(spec.unwrap_or("")))
}

impl Config {
    /// A kube handle names `TARGET/NAMESPACE`, either part may be empty.
    /// TARGET is a `[kube.NAME]` entry, or else a kubeconfig context. The
    /// result's `url` is `CONTEXT/NAMESPACE[@KUBECONFIG]` (empty parts:
    /// the kubeconfig's current context and that context's namespace);
    /// modules/k8s reads the kubeconfig itself.
    fn resolve_kube(&self, spec: &str) -> Target {
        let kube = self.table(Kind::Kube);
        let (given, mut ns) = spec.split_once('/').unwrap_or((spec, ""));
        // The default may name a namespace too (`--target kube=ctx/ns`,
        // `--context`, `-n`): it applies when the spec names no context.
        let default = self.default_name(Kind::Kube).cloned().unwrap_or_default();
        let (default_name, default_ns) = default.split_once('/').unwrap_or((&default, ""));
        let name = match given {
            "" => {
                if ns.is_empty() {
                    ns = default_ns;
                }
                default_name.to_string()
            }
            g => g.to_string(),
        };
        let entry = kube.get(&name).or_else(|| {
            kube.values()
                .find(|t| !name.is_empty() && t.context.as_deref() == Some(name.as_str()))
        });
        let file = entry.and_then(|e| {
            e.kubeconfig
                .clone()
                .or_else(|| e.url.as_ref().map(PathBuf::from))
        });
        let context = match entry {
            Some(e) => e
                .context
                .clone()
                .or_else(|| (file.is_none() && kube.contains_key(&name)).then(|| name.clone())),
            None => (!name.is_empty()).then(|| name.clone()),
        };
        let namespace = match ns {
            "" => entry.and_then(|e| e.namespace.clone()),
            n => Some(n.to_string()),
        };
        // With no target and no context named, the current context applies:
        // the kubeconfig's, or in a pod without one, the pod's service
        // account, which `context = "in-cluster"` names.
        let current = if entry.is_none() && context.is_none() {
            kube_current_context(file.as_deref()).or_else(|| {
                std::env::var_os("KUBERNETES_SERVICE_HOST")
                    .is_some()
                    .then(|| IN_CLUSTER.to_string())
            })
        } else {
            None
        };
        // Protection follows the current context too.
        let protected = match entry {
            Some(e) => e.protected,
            None if context.is_none() => current.as_ref().is_some_and(|c| {
                kube.iter().any(|(n, t)| {
                    t.protected && (n == c || t.context.as_deref() == Some(c.as_str()))
                })
            }),
            None => false,
        };
        let mut url = format!(
            "{}/{}",
            context.as_deref().unwrap_or(""),
            namespace.as_deref().unwrap_or("")
        );
        if let Some(f) = &file {
            url.push('@');
            url.push_str(&f.to_string_lossy());
        }
        let mut shown = if !name.is_empty() {
            name
        } else if current.as_deref() == Some(IN_CLUSTER) {
            IN_CLUSTER.to_string()
        } else {
            "current-context".to_string()
        };
        if !ns.is_empty() {
            shown = format!("{shown}/{ns}");
        }
        Target {
            kind: Kind::Kube,
            name: shown,
            url,
            protected,
            bearer: None,
            ca_file: None,
        }
    }
}

/// `current-context:` of the kubeconfig that applies (the file, else the
/// first KUBECONFIG entry that has one, else ~/.kube/config): a line scan,
/// enough to decide whether a protected target is in use.
pub fn kube_current_context(file: Option<&Path>) -> Option<String> {
    let files: Vec<PathBuf> = match file {
        Some(f) => vec![f.to_path_buf()],
        None => match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
            Some(v) => std::env::split_paths(&v).collect(),
            None => paths::home()
                .map(|h| h.join(".kube/config"))
                .into_iter()
                .collect(),
        },
    };
    files.iter().find_map(|f| {
        let text = std::fs::read_to_string(f).ok()?;
        text.lines().find_map(|l| {
            let v = l
                .strip_prefix("current-context:")?
                .trim()
                .trim_matches('"')
                .trim_matches('\'');
            (!v.is_empty()).then(|| v.to_string())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_targets_name_a_context_and_namespace() {
        let cfg: Config = toml::from_str(
            "[kube.prod]\ncontext = \"gke-prod\"\nnamespace = \"web\"\nkubeconfig = \"/k/prod\"\nprotected = true\n",
        )
        .unwrap();
        let t = cfg.resolve(Kind::Kube, Some("prod/")).unwrap();
        assert_eq!(
            (t.url.as_str(), t.protected),
            ("gke-prod/web@/k/prod", true)
        );
        assert_eq!(t.display(), "prod");
        // Named by its context, another namespace: still protected.
        let t = cfg.resolve(Kind::Kube, Some("gke-prod/api")).unwrap();
        assert_eq!(
            (t.url.as_str(), t.protected),
            ("gke-prod/api@/k/prod", true)
        );
        // An unconfigured context is used as is.
        let t = cfg.resolve(Kind::Kube, Some("kind-dev/")).unwrap();
        assert_eq!((t.url.as_str(), t.protected), ("kind-dev/", false));
    }

    #[test]
    fn the_kube_default_names_the_target() {
        let cfg: Config = toml::from_str(
            "[defaults]\nkube = \"prod\"\n[kube.prod]\ncontext = \"gke-prod\"\nprotected = true\n",
        )
        .unwrap();
        let t = cfg.resolve(Kind::Kube, None).unwrap();
        assert_eq!(
            (t.name.as_str(), t.url.as_str(), t.protected),
            ("prod", "gke-prod/", true)
        );
    }
}
