//! The JWK Set parser: any document loads its usable keys, or is refused; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_jwt::LocalKeys;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = std::str::from_utf8(data) {
        let _ = LocalKeys::new().jwks(doc);
    }
});
