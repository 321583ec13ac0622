//! Lines for stdout that never panic.
//!
//! `println!` panics when stdout is closed (`vigil token | true`, `vigil serve --dev |
//! grep -m1 token`) or full (`> /dev/full`): the process exited 101, and a development
//! server whose banner was piped into a reader that quit stopped serving.

use std::io::{self, Write};

/// Writes `text` and a newline to stdout, flushed; the error instead of a panic.
pub fn write_line(text: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()
}

/// [`write_line`] for a command whose output is its purpose: a closed stdout (the reader
/// has what it wanted, `| head -1`) ends the process quietly with 0; any other failure (a
/// full disk) ends it with 1 and the cause on stderr.
pub fn line_or_exit(text: &str) {
    if let Err(e) = write_line(text) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("vigil: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}
