//! Arbitrary text as a configuration file: loading must never panic, only
//! accept or refuse with a message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|input: &[u8]| {
    if let Ok(text) = std::str::from_utf8(input) {
        let _ = mailfeed::config::Config::from_toml(text, Path::new("/nonexistent"));
    }
});
