//! Subcommands other than `serve`: each a small program over the library.

pub mod bench;
pub mod serve;
pub mod token;
pub mod watch;
