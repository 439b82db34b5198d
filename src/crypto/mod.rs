//! Crypto for TWAMP authenticated, encrypted and mixed modes (RFC 4656 §3.1–3.4, §4; RFC 5357 §3–4; RFC 5618).
//!
//! Everything here was checked byte for byte against captures of perfSONAR owamp 5.2.3
//! (twping ↔ twampd, `/work/shared/vectors/owamp_{auth,encr}.*`); the tests replay them.
//!
//! # Keys (RFC 4656 §3.1)
//! * Shared-secret key K = PBKDF2-HMAC-SHA1(pass-phrase, Salt, Count), 16 octets ([`derive_key`]).
//! * Token = AES-128-CBC(K, IV = 0, Challenge ‖ AES-Session-Key ‖ HMAC-Session-Key), 64 octets
//!   ([`encrypt_token`], [`decrypt_token`]). A wrong pass-phrase shows up as a Challenge that does
//!   not match the Server-Greeting's ([`Error::BadToken`]).
//! * Per test session (RFC 4656 §4.1): AES key = AES-ECB(key = SID, AES-Session-Key),
//!   HMAC key = AES-CBC(key = SID, IV = 0, HMAC-Session-Key) ([`TestKeys::derive`]).
//!
//! # Control stream (RFC 4656 §3.4, RFC 5357 §3) — see [`control`]
//! AES-128-CBC under the AES-Session-Key, one chain per direction, continued across messages:
//! Control-Client → Server starts from Client-IV, Server → Control-Client from Server-IV. The
//! first block of the server's chain is the last block of Server-Start (Start-Time ‖ MBZ); the
//! first block of the client's chain is the first block of Request-TW-Session. Every message
//! after Server-Start ends in a 16-octet HMAC: HMAC-SHA1 keyed with the HMAC-Session-Key,
//! truncated to its first 16 octets, over the *plaintext* sent in that direction since the
//! previous HMAC, then encrypted along with the message. Server-Start has no HMAC field, so its
//! Start-Time block is covered by the HMAC of the next server message (Accept-Session) — owamp
//! does this (`protocol.c`, `_OWPWriteServerStart`) and the captures confirm it.
//!
//! # Test packets (RFC 4656 §4.1.2, RFC 5357 §4.1.2 and §4.2.1, erratum 5045) — see [`test`]
//! | packet, mode | encrypted (key: test AES key, IV 0) | HMAC over (plaintext) | HMAC at |
//! |---|---|---|---|
//! | sender, authenticated | octets 0..16, ECB (= CBC with IV 0, one block) | 0..16 | 32..48 |
//! | sender, encrypted | octets 0..32, CBC | 0..32 | 32..48 |
//! | reflected, authenticated | octets 0..16, ECB | 0..16 | 96..112 |
//! | reflected, encrypted | octets 0..96, CBC | 0..96 | 96..112 |
//!
//! The HMAC field and the padding are neither encrypted nor covered. In authenticated mode the
//! timestamps (and, in reflected packets, the Sender Sequence Number, Sender Timestamp and Sender
//! TTL) travel in clear *and* outside the HMAC: only the Sequence Number block is protected.
//! That is what owamp does and what interoperates; it is the price RFC 4656 pays for letting the
//! timestamp be written after the (slow) encryption of block 0.
//!
//! Mixed mode (RFC 5618) uses [`ControlCipher`] for the control stream and the unauthenticated
//! test packet layout, so it needs no [`TestCipher`].
//!
//! # Hygiene
//! No allocation, no `unsafe`, no panic on peer data; MACs and the Token's Challenge are compared
//! in constant time; key material lives in types that zeroize on drop and whose `Debug` prints
//! no key bytes.

pub mod control;
pub mod test;

pub use control::ControlCipher;
pub use test::{TestCipher, TestKeys, TestSecurity};

use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, KeyInit};
use aes::Aes128;
use hmac::Hmac;
use sha1::Sha1;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Errors of the crypto layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// HMAC mismatch
    BadHmac,
    /// Token's challenge does not match the greeting's (wrong key)
    BadToken,
    /// a buffer has the wrong length for the operation
    Length {
        /// the length the operation needs (the minimum, or the next multiple of [`BLOCK`])
        need: usize,
        /// the length it was given
        got: usize,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::BadHmac => f.write_str("HMAC mismatch"),
            Error::BadToken => {
                f.write_str("Token does not carry the Server-Greeting's Challenge (wrong key)")
            }
            Error::Length { need, got } => write!(f, "buffer of {got} octets, need {need}"),
        }
    }
}

impl std::error::Error for Error {}

/// Length of the truncated HMAC-SHA1 carried in control messages and test packets
/// (RFC 4656 §3.4, RFC 5357 §4.1.2).
pub const HMAC_LEN: usize = 16;
/// AES block size: control messages are whole blocks (RFC 4656 §3.4).
pub const BLOCK: usize = 16;

/// HMAC-SHA1, the only MAC of TWAMP (RFC 4656 §3.4).
pub(crate) type HmacSha1 = Hmac<Sha1>;

/// AES-Session-Key and HMAC-Session-Key (RFC 4656 §3.1), zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SessionKeys {
    /// AES-Session-Key: encrypts the control stream; test keys are derived from it.
    pub aes: [u8; 16],
    /// HMAC-Session-Key: authenticates the control stream; test keys are derived from it.
    pub hmac: [u8; 32],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys { .. }")
    }
}

/// Shared-secret key K = PBKDF2-HMAC-SHA1(passphrase, salt, count), 16 octets, zeroized on drop.
///
/// RFC 4656 §3.1 (and RFC 5357 §3.1 for the Count bound): the caller checks `count` against its
/// maximum *before* calling, since a rogue Server-Greeting could otherwise make us burn CPU.
/// `count` 0 behaves as 1; nothing here panics.
pub fn derive_key(passphrase: &[u8], salt: &[u8; 16], count: u32) -> Zeroizing<[u8; 16]> {
    let mut k = Zeroizing::new([0u8; 16]);
    pbkdf2::pbkdf2_hmac::<Sha1>(passphrase, salt, count, &mut k[..]);
    k
}

/// Token = AES-CBC(K, IV=0, Challenge ‖ AES-Session-Key ‖ HMAC-Session-Key)  (64 octets)
///
/// RFC 4656 §3.1: the Control-Client sends it in Set-Up-Response.
pub fn encrypt_token(key: &[u8; 16], challenge: &[u8; 16], keys: &SessionKeys) -> [u8; 64] {
    let mut buf = Zeroizing::new([0u8; 64]);
    buf[..16].copy_from_slice(challenge);
    buf[16..32].copy_from_slice(&keys.aes);
    buf[32..].copy_from_slice(&keys.hmac);
    cbc_encryptor(&Aes128::new(key.into()), &[0; 16]).encrypt_blocks(as_blocks(&mut buf[..]));
    *buf
}

/// Decrypts a Token and checks its Challenge against the greeting's in constant time.
///
/// RFC 4656 §3.1: the Server recovers the session keys; a Challenge other than the one it sent
/// means the Control-Client used another pass-phrase (or is replaying) → [`Error::BadToken`].
pub fn decrypt_token(
    key: &[u8; 16],
    token: &[u8; 64],
    challenge: &[u8; 16],
) -> Result<SessionKeys, Error> {
    let mut buf = Zeroizing::new(*token);
    cbc_decryptor(&Aes128::new(key.into()), &[0; 16]).decrypt_blocks(as_blocks(&mut buf[..]));
    if !ct_eq(&buf[..16], challenge) {
        return Err(Error::BadToken);
    }
    let mut keys = SessionKeys {
        aes: [0; 16],
        hmac: [0; 32],
    };
    keys.aes.copy_from_slice(&buf[16..32]);
    keys.hmac.copy_from_slice(&buf[32..]);
    Ok(keys)
}

/// Constant-time equality.
///
/// The lengths are not secret (a length mismatch returns `false` at once); the contents are
/// compared without an early exit.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

/// Checks that `len` is a whole number of blocks.
pub(crate) fn check_blocks(len: usize) -> Result<(), Error> {
    if len.is_multiple_of(BLOCK) {
        Ok(())
    } else {
        Err(Error::Length {
            need: len.next_multiple_of(BLOCK),
            got: len,
        })
    }
}

/// Views a whole number of blocks as AES blocks. The caller has checked the length
/// ([`check_blocks`] or a fixed-size array); any tail would be left untouched.
pub(crate) fn as_blocks(buf: &mut [u8]) -> &mut [aes::Block] {
    debug_assert!(buf.len().is_multiple_of(BLOCK), "callers pass whole blocks");
    aes::cipher::array::Array::slice_as_chunks_mut(buf).0
}

/// A CBC encryptor over a borrowed key schedule (no copy of the round keys per packet).
pub(crate) fn cbc_encryptor<'a>(aes: &'a Aes128, iv: &[u8; 16]) -> cbc::Encryptor<&'a Aes128> {
    cbc::Encryptor::inner_iv_init(aes, iv.into())
}

/// A CBC decryptor over a borrowed key schedule.
pub(crate) fn cbc_decryptor<'a>(aes: &'a Aes128, iv: &[u8; 16]) -> cbc::Decryptor<&'a Aes128> {
    cbc::Decryptor::inner_iv_init(aes, iv.into())
}

/// A keyed HMAC-SHA1 instance.
pub(crate) fn hmac_sha1(key: &[u8]) -> HmacSha1 {
    <HmacSha1 as KeyInit>::new_from_slice(key).expect("HMAC accepts a key of any length")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Hex → bytes (the constants below are plain lower-case hex).
    pub(crate) fn unhex(s: &str) -> Vec<u8> {
        assert!(s.len().is_multiple_of(2), "odd-length hex constant");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex constant"))
            .collect()
    }

    pub(crate) fn unhex_n<const N: usize>(s: &str) -> [u8; N] {
        unhex(s)
            .try_into()
            .expect("hex constant of the right length")
    }

    pub(crate) fn session_keys(s: &Stream) -> SessionKeys {
        SessionKeys {
            aes: unhex_n(s.aes),
            hmac: unhex_n(s.hmac),
        }
    }

    /// The secret both captures were made with (README: KeyID `testuser`).
    pub(crate) const PASSPHRASE: &[u8] = b"twamp-test-secret-2024";
    /// Server-Greeting Count in every capture (twampd's default).
    pub(crate) const COUNT: u32 = 2048;

    /// One control connection's values: Salt and Challenge from Server-Greeting, Token and
    /// Client-IV from Set-Up-Response, Server-IV from Server-Start, SID from Accept-Session (all
    /// from `owamp_*.hexdump.txt`); K, the session keys and the test keys are the values listed
    /// in `owamp_*.decrypted.txt`.
    pub(crate) struct Stream {
        pub salt: &'static str,
        pub challenge: &'static str,
        pub token: &'static str,
        pub k: &'static str,
        pub aes: &'static str,
        pub hmac: &'static str,
        pub client_iv: &'static str,
        pub server_iv: &'static str,
        pub sid: &'static str,
        pub test_aes: &'static str,
        pub test_hmac: &'static str,
    }

    /// `[auth stream 0, auth stream 1, encr stream 0, encr stream 1]`
    pub(crate) const STREAMS: [Stream; 4] = [
        // owamp_auth, TCP stream 0
        Stream {
            salt: "b32476b2a1c9636c12130f8035f3d325",
            challenge: "7f4e5dbc9c90a6181b3c8b89db14356b",
            token: concat!(
                "74873cc484a3e56e3373df85844bf80e",
                "c59c6aae7f63cc0052d343cd70657b1b",
                "0a7fbb5a0fb3cc36a84bb39f6aad91a1",
                "e604aace55b6ab7fbfdb9c0d8e38ae5a",
            ),
            k: "a8b3369e90b0433eb99d1d17cf698d9e",
            aes: "417d6bf06681438eb64ed4dd7b6f9761",
            hmac: concat!(
                "e7b0cb04e3606141ca19a8baec06dc21",
                "ca9b1461860c9255230915341f5497f3",
            ),
            client_iv: "e5ee80002a3397f3a64c72dd53856ea8",
            server_iv: "690f9cc43519c9afd6d398560e1da7d3",
            sid: "7f000001eead2a0f4bd3f5b524d32b58",
            test_aes: "5ea5d1290663eb8cd1e2174b771f17de",
            test_hmac: concat!(
                "9b185385f589f47dc6f5339a8f25fbba",
                "d9a19e3bcb83484427872d90400b6dec",
            ),
        },
        // owamp_auth, TCP stream 1
        Stream {
            salt: "cf3441f0f6ce99ed318a1a028856fe4f",
            challenge: "4786904d06f956a3ddf096de6ef0adea",
            token: concat!(
                "f94ad5adbb683c7b013b81ae2be32334",
                "2a141f300a5b0be75c0e74df0b5d49cf",
                "60bfc33100bd574f649fab2228c8b647",
                "da1ce79341b41d3a25234bdb16024365",
            ),
            k: "708992c36bbfd82f66cac6c77ff6d849",
            aes: "2e2e34937ac6e56ea4235a8892da19e3",
            hmac: concat!(
                "d1effdedd669aa1c4f77bb294f757564",
                "5f25e95190ab90efc3e53c02079a7eb4",
            ),
            client_iv: "65a47490931a5d54fcfa6ecc37d9b84d",
            server_iv: "26fde409fd33f2dabfa8e921875cc6c6",
            sid: "7f000001eead2a1354537e2cde33f4b9",
            test_aes: "0f2971172c3ad96c9582183a3ce8276c",
            test_hmac: concat!(
                "88da66317b1eaa2af11a433055822009",
                "a5f42c1b6c1398d70eae32adc0eb8c0a",
            ),
        },
        // owamp_encr, TCP stream 0
        Stream {
            salt: "7a831268dab75f9723a83b371a49865e",
            challenge: "1e023bc6d93af29dbabead7a3ffaf998",
            token: concat!(
                "b8029957322fd0a91df0526ffbf603cb",
                "1d54140e104b44fe8095827803d7c159",
                "700ec30dd878df1a3fb611b551af19b4",
                "085745c5a0cfba0dafec9b6dc2781227",
            ),
            k: "a04f313d9b6ecd276df6315ce7f56446",
            aes: "d4e17b65e1970ea5234557feb7376a56",
            hmac: concat!(
                "40bc87bf7bc4f60ca8967621216fd876",
                "7f88a5c141f1e7587ca419aecdbd0a7b",
            ),
            client_iv: "2e2a3249423e525aacdf073d45842040",
            server_iv: "54794c33d5ef2774a176bee416abbbbc",
            sid: "7f000001eead2a1d986f2628c023f0f9",
            test_aes: "080020ed12ea79f0bf1567ab62dfe6f9",
            test_hmac: concat!(
                "ae156aa06ea3e290b20b40c885a5becf",
                "655bf8e2b2058b096b7a105a618a4f05",
            ),
        },
        // owamp_encr, TCP stream 1
        Stream {
            salt: "07d49d79b76c36a525dce93bdcf25360",
            challenge: "3a7f56b913b4b305d645354415d0a93b",
            token: concat!(
                "560ddf45d8ac3a727c6baec413aacbd7",
                "5f2770c12ac82ca1c90ff660e0820a2c",
                "832f66802bc0c7e248cfe47c10c014a2",
                "72ed98d71e929b46fff52d03e8c28225",
            ),
            k: "760cfe330e4d7f1c4dbff8583b4d968a",
            aes: "2bdb7725aded0f2ef5449e46ae29688a",
            hmac: concat!(
                "0496a8d61369d0f663d739d4b80f274e",
                "1facee9e28ba0c778d5278003fd5620f",
            ),
            client_iv: "2ac32e6a0a02cebbf2ffc9ece42b91a3",
            server_iv: "0785bc3a579f29347c215711acd6d4b2",
            sid: "7f000001eead2a219fa2595b28b09822",
            test_aes: "e6a040b5d1576280dfd55958d9c8a1b7",
            test_hmac: concat!(
                "9932bc434e138a3460d25311d889865f",
                "f78568b4ced54a117725ff71fd8632b4",
            ),
        },
    ];
    pub(crate) const AUTH0: &Stream = &STREAMS[0];
    pub(crate) const ENCR0: &Stream = &STREAMS[2];

    #[test]
    fn derive_key_matches_captures() {
        for s in &STREAMS {
            let k = derive_key(PASSPHRASE, &unhex_n(s.salt), COUNT);
            assert_eq!(&k[..], &unhex(s.k)[..], "K for salt {}", s.salt);
        }
    }

    #[test]
    fn token_decrypts_to_listed_keys_and_reencrypts() {
        for s in &STREAMS {
            let k: [u8; 16] = unhex_n(s.k);
            let challenge = unhex_n(s.challenge);
            let token: [u8; 64] = unhex_n(s.token);
            let keys = decrypt_token(&k, &token, &challenge).expect("captured Token");
            assert_eq!(keys.aes, unhex_n::<16>(s.aes));
            assert_eq!(keys.hmac, unhex_n::<32>(s.hmac));
            assert_eq!(encrypt_token(&k, &challenge, &keys), token);
        }
    }

    #[test]
    fn full_token_path_from_passphrase() {
        let s = ENCR0;
        let k = derive_key(PASSPHRASE, &unhex_n(s.salt), COUNT);
        let keys = decrypt_token(&k, &unhex_n(s.token), &unhex_n(s.challenge)).expect("Token");
        assert_eq!(keys.aes, unhex_n::<16>(s.aes));
    }

    #[test]
    fn wrong_passphrase_is_bad_token() {
        for s in &STREAMS {
            let k = derive_key(b"twamp-test-secret-2025", &unhex_n(s.salt), COUNT);
            let r = decrypt_token(&k, &unhex_n(s.token), &unhex_n(s.challenge));
            assert_eq!(r.err(), Some(Error::BadToken));
        }
    }

    #[test]
    fn token_for_another_challenge_is_bad_token() {
        // A replayed Token answers an old greeting: the Challenge no longer matches.
        let (a, b) = (&STREAMS[0], &STREAMS[1]);
        let r = decrypt_token(&unhex_n(a.k), &unhex_n(a.token), &unhex_n(b.challenge));
        assert_eq!(r.err(), Some(Error::BadToken));
    }

    #[test]
    fn ct_eq_works() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(&[0x80; 16], &[0x00; 16]));
    }

    #[test]
    fn session_keys_debug_hides_keys() {
        let keys = SessionKeys {
            aes: [0xa5; 16],
            hmac: [0x5a; 32],
        };
        let s = format!("{keys:?} {keys:#?}");
        assert!(
            !s.contains("165") && !s.contains("a5") && !s.contains("90"),
            "{s}"
        );
        assert!(!s.to_lowercase().contains("5a"), "{s}");
    }

    #[test]
    fn error_display() {
        assert_eq!(
            Error::Length { need: 48, got: 47 }.to_string(),
            "buffer of 47 octets, need 48"
        );
        assert_eq!(Error::BadHmac.to_string(), "HMAC mismatch");
    }

    #[test]
    fn check_blocks_lengths() {
        assert_eq!(check_blocks(0), Ok(()));
        assert_eq!(check_blocks(32), Ok(()));
        assert_eq!(check_blocks(20), Err(Error::Length { need: 32, got: 20 }));
    }
}
