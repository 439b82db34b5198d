use super::{Error, SessionKeys};
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestSecurity {
    Authenticated,
    Encrypted,
}
pub struct TestKeys;
impl TestKeys {
    pub fn derive(_s: &SessionKeys, _sid: &[u8; 16]) -> Self {
        TestKeys
    }
}
pub struct TestCipher;
impl TestCipher {
    pub const SENDER_BASE: usize = 48;
    pub const REFLECTOR_BASE: usize = 112;
    pub fn new(_k: &TestKeys, _s: TestSecurity) -> Self {
        TestCipher
    }
    pub fn seal_sender(&self, _p: &mut [u8]) -> Result<(), Error> {
        Err(Error::BadHmac)
    }
    pub fn open_sender(&self, _p: &mut [u8]) -> Result<(), Error> {
        Err(Error::BadHmac)
    }
    pub fn seal_reflected(&self, _p: &mut [u8]) -> Result<(), Error> {
        Err(Error::BadHmac)
    }
    pub fn open_reflected(&self, _p: &mut [u8]) -> Result<(), Error> {
        Err(Error::BadHmac)
    }
}
