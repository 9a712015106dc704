//! A running `opsh sandbox` announces its servers in a state file; other
//! opsh processes see them as targets named `sandbox` while it lives.

use super::{paths, Config, Kind};

/// Where a running `opsh sandbox` announces its servers to other opsh
/// processes, which then see them as the target `sandbox`.
pub fn sandbox_state_file() -> std::path::PathBuf {
    paths::state_dir().join("sandbox.json")
}

/// The pid of a live `opsh sandbox` announced in the state file (not this
/// process): a second one would overwrite its announcement, and remove it
/// on exit while the first still runs.
pub fn running_sandbox() -> Option<u32> {
    let text = std::fs::read_to_string(sandbox_state_file()).ok()?;
    let v = serde_json::from_str::<serde_json::Value>(&text).ok()?;
    let pid = u32::try_from(v["pid"].as_u64()?).ok()?;
    (pid != std::process::id() && crate::proc::alive(pid)).then_some(pid)
}

/// Removes the announcement if it is still this process's.
pub fn withdraw_sandbox(file: &std::path::Path) {
    let ours = std::fs::read_to_string(file)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["pid"].as_u64())
        .is_some_and(|pid| pid == u64::from(std::process::id()));
    if ours {
        let _ = std::fs::remove_file(file);
    }
}

/// Writes the announcement for this process's servers; the file is read
/// back by `load_sandbox_announcement` while this process lives.
pub fn announce_sandbox(targets: &[(Kind, String)]) -> std::io::Result<std::path::PathBuf> {
    let file = sandbox_state_file();
    let urls: serde_json::Map<String, serde_json::Value> = targets
        .iter()
        .map(|(k, u)| (k.name().to_string(), u.clone().into()))
        .collect();
    let announce = serde_json::json!({"pid": std::process::id(), "targets": urls});
    if let Some(d) = file.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(&file, announce.to_string())?;
    Ok(file)
}

impl Config {
    /// Reads what a running `opsh sandbox` announced, if that process is
    /// still alive, and exposes its servers as targets named `sandbox`.
    pub(super) fn load_sandbox_announcement(&mut self) {
        let Ok(text) = std::fs::read_to_string(sandbox_state_file()) else {
            return;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            return;
        };
        let alive = v["pid"]
            .as_u64()
            .and_then(|pid| u32::try_from(pid).ok())
            .is_some_and(crate::proc::alive);
        if !alive {
            return;
        }
        for kind in Kind::ALL {
            if let Some(url) = v["targets"][kind.name()].as_str() {
                if !self.table(kind).contains_key("sandbox") {
                    self.add_target(kind, "sandbox", url, false);
                    if let Some(t) = self
                        .targets
                        .get_mut(&kind)
                        .and_then(|t| t.get_mut("sandbox"))
                    {
                        t.announced = true;
                    }
                }
            }
        }
    }
}
