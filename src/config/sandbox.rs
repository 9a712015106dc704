//! A running `opsh sandbox` announces its servers in a state file; other
//! opsh processes see them as targets named `sandbox` while it lives.

use super::{paths, Config, Kind};

/// Where a running `opsh sandbox` announces its servers to other opsh
/// processes, which then see them as the target `sandbox`.
pub fn sandbox_state_file() -> std::path::PathBuf {
    paths::state_dir().join("sandbox.json")
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
                }
            }
        }
    }
}
