//! Feeds arbitrary bytes to the CSV parser: it must return a dataset or an error, never panic,
//! and a dataset it returns must be internally consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(dataset) = regserve::data::parse_csv(bytes) {
        assert!(dataset.rows() >= 2);
        for column in dataset.columns() {
            if let Ok(values) = column.values() {
                assert_eq!(values.len(), dataset.rows());
                assert!(values.iter().all(|v| v.is_finite()));
            }
        }
    }
});
