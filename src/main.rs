//! The `mailfeed` binary: parse the command line and hand over to the library.

use clap::Parser;

fn main() {
    let cli = mailfeed::cli::Cli::parse();
    std::process::exit(mailfeed::cli::run(cli));
}
