//! The answers of key services (Unkey v2 and the generic protocol): any body is a verdict or
//! an upstream error; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_apikey::__fuzz;

fuzz_target!(|data: &[u8]| {
    let _ = __fuzz::unkey_answer(data);
    let _ = __fuzz::json_answer(data);
});
