#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| twamp_fuzz::control_n_messages(data));
