//! The migration file parser on any bytes: no panic, no hang, lines inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schemagate::migration::parse;

fuzz_target!(|data: &[u8]| {
    let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
    match parse("m/1_a.sql", "1_a.sql", data) {
        Ok(m) => assert_eq!(m.checksum.len(), 64),
        Err(problems) => {
            assert!(!problems.is_empty());
            for line in problems.iter().filter_map(|p| p.line) {
                assert!((1..=lines + 1).contains(&line));
            }
        }
    }
});
