//! PLACEHOLDER until the crypto module lands: same API, no secure mode works.
pub mod control;
pub mod test;
pub use control::ControlCipher;
pub use test::{TestCipher, TestKeys, TestSecurity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    BadHmac,
    BadToken,
    Length { need: usize, got: usize },
}
impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
impl std::error::Error for Error {}
pub const HMAC_LEN: usize = 16;
pub const BLOCK: usize = 16;
pub struct SessionKeys {
    pub aes: [u8; 16],
    pub hmac: [u8; 32],
}
pub fn derive_key(_p: &[u8], _s: &[u8; 16], _c: u32) -> zeroize::Zeroizing<[u8; 16]> {
    zeroize::Zeroizing::new([0; 16])
}
pub fn encrypt_token(_k: &[u8; 16], _c: &[u8; 16], _keys: &SessionKeys) -> [u8; 64] {
    [0; 64]
}
pub fn decrypt_token(_k: &[u8; 16], _t: &[u8; 64], _c: &[u8; 16]) -> Result<SessionKeys, Error> {
    Err(Error::BadToken)
}
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a == b
}
