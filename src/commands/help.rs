//! `opsh help [NAME]`: the list of primitives, one primitive, module or
//! topic, or the whole reference as Markdown (docs/reference.md).

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
        Some(n) => help::lookup(n, color).map_err(CliError::usage)?,
    };
    crate::stdio::out(format_args!("{text}"));
    Ok(exit::OK)
}
