//! `corsgate completions SHELL` and `corsgate man`: shell completions and the
//! manual page, both generated from the clap definition in [`crate::cli`], so
//! they list exactly the commands and options the binary has.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::Outcome;
use crate::cli::Cli;

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "corsgate", out);
    Ok(Outcome::Clean)
}

/// Writes `corsgate(1)` to `out`, or, with `dir`, one page per command
/// (`corsgate.1`, `corsgate-check.1`, …) into that directory, as a package
/// installs them under `/usr/share/man/man1`.
pub fn man(dir: Option<&Path>, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let command = Cli::command();
    match dir {
        None => clap_mangen::Man::new(command).render(out)?,
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("cannot write the pages into {}", dir.display()))?;
        }
    }
    Ok(Outcome::Clean)
}
