//! The splitter on any UTF-8 text: no panic, no hang, and its pieces tile the input,
//! each piece split alone is itself, and what lies between pieces holds no statement.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schemagate::split::split;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(statements) = split(sql) else {
        return;
    };
    let mut end = 0;
    for s in &statements {
        assert!(s.offset >= end);
        assert_eq!(&sql[s.offset..s.offset + s.sql.len()], s.sql);
        assert!(split(&sql[end..s.offset]).is_ok_and(|v| v.is_empty()));
        let alone = split(s.sql).expect("a piece splits");
        assert_eq!(alone.len(), 1);
        assert_eq!(alone[0].sql, s.sql);
        let _ = s.first_keyword();
        end = s.offset + s.sql.len();
    }
    assert!(split(&sql[end..]).is_ok_and(|v| v.is_empty()));
});
