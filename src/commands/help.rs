//! `opsh help [NAME]`: the list of primitives, one primitive, module or
//! topic, a script's arguments (`opsh help scripts/x.rhai`), or the whole
//! reference as Markdown (docs/reference.md).

use crate::context::Context;
use crate::error::CliError;
use crate::{exit, help};

pub fn run(ctx: &Context, name: Option<&str>, markdown: bool) -> Result<i32, CliError> {
    if markdown {
        crate::stdio::out(format_args!("{}", help::reference_markdown()));
        return Ok(exit::OK);
    }
    let color = ctx.output().color;
    let text = match name {
        None => help::overview(color),
        Some(n) if is_script(n) => {
            let (name, text) = crate::context::read_script(std::path::Path::new(n))?;
            super::run::script_help(&name, &text)?
        }
        Some(n) => match command_help(n) {
            Some(text) => text,
            // `opsh help run()`: the script function, not the command.
            None => help::lookup(n.trim_end_matches("()"), color).map_err(CliError::usage)?,
        },
    };
    crate::stdio::out(format_args!("{text}"));
    Ok(exit::OK)
}

/// A word naming a script rather than a primitive or topic: a `.rhai` file
/// name, or a file that exists (`pg.query` is neither).
fn is_script(word: &str) -> bool {
    let p = std::path::Path::new(word);
    p.extension().is_some_and(|e| e == "rhai") || (word.contains('/') && p.is_file())
}

/// `opsh help run`: the command's `--help`, and a pointer to a script
/// function of the same name (`run()` in test mode).
fn command_help(name: &str) -> Option<String> {
    let mut cmd = crate::args::command();
    // Building names the usage line `opsh run`, not `run`.
    cmd.build();
    let sub = cmd.find_subcommand_mut(name)?;
    let mut text = sub.render_long_help().to_string();
    if crate::registry::lookup(name).is_some() {
        text.push_str(&format!(
            "\nThe script function `{name}()` is described by `opsh help {name}()`.\n"
        ));
    }
    Some(text)
}
