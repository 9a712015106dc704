//! Meta commands: lines starting with `:` are the console's own, never Rhai.

pub struct MetaCommand {
    pub name: &'static str,
    pub args: &'static str,
    pub doc: &'static str,
}

pub const COMMANDS: &[MetaCommand] = &[
    MetaCommand {
        name: "help",
        args: "[NAME]",
        doc: "primitives and modules, as `opsh help NAME`",
    },
    MetaCommand {
        name: "load",
        args: "FILE",
        doc: "run a script into this session; its functions stay defined",
    },
    MetaCommand {
        name: "dry-run",
        args: "[on|off]",
        doc: "mutating primitives only report what they would do",
    },
    MetaCommand {
        name: "target",
        args: "[KIND NAME]",
        doc: "switch the default target of a kind (pg, redis, prom, kube)",
    },
    MetaCommand {
        name: "context",
        args: "NAME",
        doc: "switch the Kubernetes context (as kubectl's --context)",
    },
    MetaCommand {
        name: "ns",
        args: "NAMESPACE",
        doc: "switch the Kubernetes namespace (as kubectl's -n)",
    },
    MetaCommand {
        name: "audit",
        args: "",
        doc: "this session's audited actions",
    },
    MetaCommand {
        name: "clear",
        args: "",
        doc: "clear the screen",
    },
    MetaCommand {
        name: "quit",
        args: "",
        doc: "leave (also Ctrl-D)",
    },
];

/// `:q` and `:exit` are habits from other consoles.
pub fn canonical(name: &str) -> Option<&'static str> {
    let name = match name {
        "q" | "exit" => "quit",
        "h" | "?" => "help",
        other => other,
    };
    COMMANDS.iter().find(|c| c.name == name).map(|c| c.name)
}

pub fn suggest(name: &str) -> Option<&'static str> {
    crate::registry::suggest(name, COMMANDS.iter().map(|c| c.name)).or_else(|| {
        // Short typos (":hlp") score low on Jaro-Winkler; a shared prefix helps.
        // By character, not byte: `:é` is one character of two bytes.
        let first = name.chars().next()?;
        COMMANDS
            .iter()
            .find(|c| c.name.starts_with(first))
            .map(|c| c.name)
    })
}

pub fn usage() -> String {
    let mut out = String::from("\nConsole commands\n");
    for c in COMMANDS {
        let head = format!(":{} {}", c.name, c.args);
        out.push_str(&format!("  {head:<22} {}\n", c.doc));
    }
    out.push_str(
        "\n  `_` is the last result. Tab completes, Ctrl-R searches history,\n  Ctrl-C clears the line or cancels what is running, Ctrl-D leaves.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_take_any_first_character() {
        assert_eq!(suggest("hlp"), Some("help"));
        for typed in ["é", "éa", "日本", "\u{1F600}", ""] {
            // Any answer will do; a panic will not.
            let _ = suggest(typed);
        }
        assert_eq!(suggest("ä"), None);
    }
}
