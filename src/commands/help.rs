//! `opsh help [NAME]`: the list of primitives, one primitive, module or
//! topic, or the whole reference as Markdown (docs/reference.md).

use crate::context::Context;
use crate::error::CliError;
use crate::{exit, help};

pub fn run(ctx: &Context, name: Option<&str>, markdown: bool) -> Result<i32, CliError> {
    if markdown {
        print!("{}", help::reference_markdown());
        return Ok(exit::OK);
    }
    let color = ctx.output().color;
    let text = match name {
        None => help::overview(color),
        Some(n) => match command_help(n) {
            Some(text) => text,
            // `opsh help run()`: the script function, not the command.
            None => help::lookup(n.trim_end_matches("()"), color).map_err(CliError::usage)?,
        },
    };
    print!("{text}");
    Ok(exit::OK)
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
