//! Set-Up-Response (RFC 4656 §3.1, as used by RFC 5357 §3.1): 164 octets, the Control-Client's
//! choice of mode and, for the authenticated modes, its identity and Token.

use super::{array, Field, Modes};

mod field {
    use super::Field;
    pub const MODE: Field = 0..4;
    pub const KEY_ID: Field = 4..84;
    pub const TOKEN: Field = 84..148;
    pub const CLIENT_IV: Field = 148..164;
}

/// Set-Up-Response.
#[derive(Clone, PartialEq, Eq)]
pub struct SetUpResponse {
    /// Exactly one security mode (plus extension bits, RFC 5618/6038); 0 means the client
    /// declines (RFC 4656 §3.1).
    pub mode: Modes,
    /// KeyID: the identity, UTF-8, zero-padded to 80 octets (RFC 4656 §3.1).
    pub key_id: [u8; 80],
    /// Token: AES-CBC(K, Challenge ‖ AES-Session-Key ‖ HMAC-Session-Key).
    pub token: [u8; 64],
    pub client_iv: [u8; 16],
}

impl std::fmt::Debug for SetUpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The Token is key material encrypted under the shared secret: keep it out of logs.
        f.debug_struct("SetUpResponse")
            .field("mode", &self.mode)
            .field("key_id", &self.key_id_str())
            .finish_non_exhaustive()
    }
}

impl SetUpResponse {
    pub const LEN: usize = field::CLIENT_IV.end;
    pub const KEY_ID_LEN: usize = 80;

    /// An unauthenticated-mode response: every other field zero.
    pub fn open() -> Self {
        SetUpResponse {
            mode: Modes::UNAUTHENTICATED,
            key_id: [0; 80],
            token: [0; 64],
            client_iv: [0; 16],
        }
    }

    /// Never panics; the fields are opaque at this layer.
    pub fn parse(buf: &[u8; Self::LEN]) -> Self {
        SetUpResponse {
            mode: Modes(u32::from_be_bytes(array(buf, field::MODE))),
            key_id: array(buf, field::KEY_ID),
            token: array(buf, field::TOKEN),
            client_iv: array(buf, field::CLIENT_IV),
        }
    }

    pub fn emit(&self, buf: &mut [u8; Self::LEN]) {
        buf[field::MODE].copy_from_slice(&self.mode.0.to_be_bytes());
        buf[field::KEY_ID].copy_from_slice(&self.key_id);
        buf[field::TOKEN].copy_from_slice(&self.token);
        buf[field::CLIENT_IV].copy_from_slice(&self.client_iv);
    }

    /// Packs an identity into the KeyID field. `None` when it does not fit in 80 octets.
    pub fn pack_key_id(id: &str) -> Option<[u8; 80]> {
        let bytes = id.as_bytes();
        if bytes.len() > Self::KEY_ID_LEN {
            return None;
        }
        let mut out = [0; 80];
        out[..bytes.len()].copy_from_slice(bytes);
        Some(out)
    }

    /// The identity, up to the first NUL, lossily decoded for logs and key-file look-up.
    pub fn key_id_str(&self) -> String {
        let end = self
            .key_id
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.key_id.len());
        String::from_utf8_lossy(&self.key_id[..end]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_open_response_round_trips() {
        // owamp_open: twping's Set-Up-Response is Mode = 1 and 160 zero octets.
        let mut captured = [0u8; SetUpResponse::LEN];
        captured[3] = 1;
        let r = SetUpResponse::parse(&captured);
        assert_eq!(r, SetUpResponse::open());
        let mut buf = [0xa5; SetUpResponse::LEN];
        r.emit(&mut buf);
        assert_eq!(buf, captured);
    }

    #[test]
    fn key_id_packing() {
        let k = SetUpResponse::pack_key_id("testuser").unwrap();
        assert_eq!(&k[..8], b"testuser");
        assert!(k[8..].iter().all(|&b| b == 0));
        assert!(SetUpResponse::pack_key_id(&"x".repeat(81)).is_none());
        let r = SetUpResponse {
            key_id: k,
            ..SetUpResponse::open()
        };
        assert_eq!(r.key_id_str(), "testuser");
        assert!(!format!("{r:?}").contains("token"));
    }
}
