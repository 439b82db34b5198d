use super::{Error, SessionKeys};
pub struct ControlCipher;
impl ControlCipher {
    pub fn new(_k: &SessionKeys, _s: [u8; 16], _r: [u8; 16]) -> Self {
        ControlCipher
    }
    pub fn encrypt_unmacced(&mut self, _b: &mut [u8]) -> Result<(), Error> {
        Err(Error::BadHmac)
    }
    pub fn seal(&mut self, _m: &mut [u8]) -> Result<(), Error> {
        Err(Error::BadHmac)
    }
    pub fn decrypt(&mut self, _b: &mut [u8]) -> Result<(), Error> {
        Err(Error::BadHmac)
    }
    pub fn feed_recv(&mut self, _p: &[u8]) {}
    pub fn verify(&mut self, _m: &[u8]) -> Result<(), Error> {
        Err(Error::BadHmac)
    }
}
