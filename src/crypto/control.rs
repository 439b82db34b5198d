//! The TWAMP-Control stream after Set-Up-Response in authenticated, encrypted and mixed modes
//! (RFC 4656 §3.4 as used by RFC 5357 §3; RFC 5618 for mixed mode).
//!
//! Rules, as owamp implements them and as the captures show byte for byte:
//! * AES-128-CBC under the AES-Session-Key, one chain per direction that continues across
//!   messages (never reset): the Control-Client sends with Client-IV, the Server with Server-IV.
//! * The Server's chain starts with the last 16 octets of Server-Start (Start-Time ‖ MBZ); the
//!   first 32 octets of Server-Start (MBZ, Accept, Server-IV) are sent in clear.
//! * The HMAC at the end of each later message is HMAC-SHA1(HMAC-Session-Key, …) truncated to
//!   16 octets, over the *plaintext* sent in that direction since the previous HMAC, excluding
//!   HMAC fields. It is computed before encryption and encrypted with the message
//!   (MAC-then-encrypt). Because Server-Start has no HMAC field, the Server's first HMAC (in
//!   Accept-Session) covers Start-Time ‖ MBZ ‖ Accept-Session[..32] (owamp `protocol.c`
//!   `_OWPWriteServerStart`: "this block gets include\[d\] as part of the text for the next
//!   digest"). Every other HMAC covers only its own message.
//! * A peer must read messages as whole blocks: twampd does (`io.c` `_OWPReceiveBlocks`).

use super::{as_blocks, check_blocks, hmac_sha1, Error, HmacSha1, SessionKeys, BLOCK, HMAC_LEN};
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::Mac;

/// Per-connection state: one AES-CBC chain and one running HMAC per direction.
pub struct ControlCipher {
    enc: cbc::Encryptor<aes::Aes128Enc>,
    dec: cbc::Decryptor<aes::Aes128Dec>,
    /// Keyed and never fed: the reset state of the two running HMACs.
    fresh: HmacSha1,
    send_mac: HmacSha1,
    recv_mac: HmacSha1,
}

impl std::fmt::Debug for ControlCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControlCipher { .. }")
    }
}

impl ControlCipher {
    /// `send_iv`/`recv_iv`: Client-IV and Server-IV, swapped per side (the Control-Client sends with Client-IV).
    pub fn new(keys: &SessionKeys, send_iv: [u8; 16], recv_iv: [u8; 16]) -> Self {
        let fresh = hmac_sha1(&keys.hmac);
        Self {
            enc: cbc::Encryptor::new(&keys.aes.into(), &send_iv.into()),
            dec: cbc::Decryptor::new(&keys.aes.into(), &recv_iv.into()),
            send_mac: fresh.clone(),
            recv_mac: fresh.clone(),
            fresh,
        }
    }

    /// Encrypts whole blocks in place, continuing the send chain, and feeds their plaintext to the
    /// running send HMAC WITHOUT emitting an HMAC (used for Server-Start's last 16 octets).
    ///
    /// `Err(Length)` unless `blocks` is a whole number of blocks; nothing is changed then.
    pub fn encrypt_unmacced(&mut self, blocks: &mut [u8]) -> Result<(), Error> {
        check_blocks(blocks.len())?;
        self.send_mac.update(blocks);
        self.enc.encrypt_blocks(as_blocks(blocks));
        Ok(())
    }

    /// Seals a whole message in place: msg[len-16..] receives the truncated HMAC of the plaintext sent since the last HMAC (msg[..len-16] plus anything fed by encrypt_unmacced), then the whole message, HMAC block included, is encrypted. Resets the running send HMAC.
    ///
    /// `Err(Length)` unless `msg` is at least one block and a whole number of blocks; nothing is
    /// changed then.
    pub fn seal(&mut self, msg: &mut [u8]) -> Result<(), Error> {
        check_message(msg.len())?;
        let body_len = msg.len() - HMAC_LEN;
        let mut mac = std::mem::replace(&mut self.send_mac, self.fresh.clone());
        mac.update(&msg[..body_len]);
        let tag = mac.finalize().into_bytes();
        msg[body_len..].copy_from_slice(&tag[..HMAC_LEN]);
        self.enc.encrypt_blocks(as_blocks(msg));
        Ok(())
    }

    /// Decrypts whole blocks in place, continuing the receive chain. Does NOT touch the HMAC.
    ///
    /// A message may be decrypted in several calls (first block to learn the command, then the
    /// rest): the chain simply continues. `Err(Length)` unless `blocks` is a whole number of
    /// blocks; nothing is changed then.
    pub fn decrypt(&mut self, blocks: &mut [u8]) -> Result<(), Error> {
        check_blocks(blocks.len())?;
        self.dec.decrypt_blocks(as_blocks(blocks));
        Ok(())
    }

    /// Feeds received plaintext to the running receive HMAC without checking (client: Server-Start's last block).
    pub fn feed_recv(&mut self, plain: &[u8]) {
        self.recv_mac.update(plain);
    }

    /// Checks a received, already decrypted message: HMAC over (what was fed) ‖ msg[..len-16] against msg[len-16..], constant time; resets the running receive HMAC.
    ///
    /// The running HMAC is reset whatever the outcome (after a mismatch the connection is
    /// finished anyway). `Err(Length)` unless `msg` is at least one block and a whole number of
    /// blocks; the running HMAC is left as it was then.
    pub fn verify(&mut self, msg: &[u8]) -> Result<(), Error> {
        check_message(msg.len())?;
        let (body, tag) = msg.split_at(msg.len() - HMAC_LEN);
        let mut mac = std::mem::replace(&mut self.recv_mac, self.fresh.clone());
        mac.update(body);
        mac.verify_truncated_left(tag).map_err(|_| Error::BadHmac)
    }
}

/// A message with an HMAC: at least the HMAC block, whole blocks.
fn check_message(len: usize) -> Result<(), Error> {
    if len < BLOCK {
        return Err(Error::Length {
            need: BLOCK,
            got: len,
        });
    }
    check_blocks(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::tests::{session_keys, unhex, unhex_n, Stream, AUTH0, ENCR0};

    /// One captured control message: the octets on the wire (`owamp_*.hexdump.txt`, cut at the
    /// RFC sizes) and the plaintext listed in `owamp_*.decrypted.txt` (HMAC field included).
    struct Msg {
        what: &'static str,
        wire: &'static str,
        plain: &'static str,
    }

    /// Server → Control-Client, in order: Server-Start's encrypted last block (Start-Time ‖ MBZ,
    /// no HMAC), Accept-Session, Start-Ack.
    struct Capture {
        stream: &'static Stream,
        s2c: [Msg; 3],
        /// Control-Client → Server, in order: Request-TW-Session, Start-Sessions, Stop-Sessions.
        c2s: [Msg; 3],
    }

    const CAPTURES: [Capture; 2] = [
        Capture {
            stream: AUTH0,
            s2c: [
                Msg {
                    what: "auth Server-Start[32..48]",
                    wire: "9d490e50ab21f65ec7a9207032595780",
                    plain: "eead29f2eef2c7320000000000000000",
                },
                Msg {
                    what: "auth Accept-Session",
                    wire: concat!(
                        "e8433e21e90efaeb3ebeff20cf59c482",
                        "5e523156a08de922e11aa5396b4a1ea0",
                        "0c280dbff3c624927e8f40e29c0ee9d5",
                    ),
                    plain: concat!(
                        "00004cf87f000001eead2a0f4bd3f5b5",
                        "24d32b58000000000000000000000000",
                        "ceccd6c74aa02f2f7b4f8f285df43c10",
                    ),
                },
                Msg {
                    what: "auth Start-Ack",
                    wire: concat!(
                        "ee0cbf688b5908a44085457e8fa9c5d2",
                        "926bb3f1fc2fe74db159f8615b0c7c1b",
                    ),
                    plain: concat!(
                        "00000000000000000000000000000000",
                        "f9d8babb0c16c30ed0daa2cc17dccb27",
                    ),
                },
            ],
            c2s: [
                Msg {
                    what: "auth Request-TW-Session",
                    wire: concat!(
                        "bfed0a7b4ecd81499313588cfa7461b8",
                        "8728c4e521be191769b9109a2e15961e",
                        "7a9e9a4a2a7289a59b4927e389753daa",
                        "1190969e7880cdd90ba53b4532ea83ce",
                        "652bbce8ef4864718009f1b9bdd6564b",
                        "0ab6d68beddd3fe8c6cc6aac8bfc43d1",
                        "4da3e2ba084d28a01417d694555f63ad",
                    ),
                    plain: concat!(
                        "0504000000000000000000004e774e77",
                        "7f000001000000000000000000000000",
                        "7f000001000000000000000000000000",
                        "00000000000000000000000000000000",
                        "00000040eead2a104ee1155900000002",
                        "010cb296000000000000000000000000",
                        "0e7031fc7b95c5e9d55821d85b6bced0",
                    ),
                },
                Msg {
                    what: "auth Start-Sessions",
                    wire: concat!(
                        "2393d1812d9aca61f3d613b3af5b5453",
                        "de2e9c24b0213015f252adfab9469b65",
                    ),
                    plain: concat!(
                        "02000000000000000000000000000000",
                        "8e2a96732bc98eab87688735e6adc241",
                    ),
                },
                Msg {
                    what: "auth Stop-Sessions",
                    wire: concat!(
                        "a1ca0c5b0fa5c2353378796a46d77903",
                        "fb54d440b0223f0654c60448c5b0e4f7",
                    ),
                    plain: concat!(
                        "03000000000000010000000000000000",
                        "9e96ca1aa0756ebdde9811d9fecdba74",
                    ),
                },
            ],
        },
        Capture {
            stream: ENCR0,
            s2c: [
                Msg {
                    what: "encr Server-Start[32..48]",
                    wire: "319110de697f7887e6eb8fed6967ff84",
                    plain: "eead29f2eef2c7320000000000000000",
                },
                Msg {
                    what: "encr Accept-Session",
                    wire: concat!(
                        "c5301959a9e067febb598c4d5f52c421",
                        "3afd47aafdd4be5dd0ee45011e2af170",
                        "14c1f1faca99a447e8c5b32d7cf01caa",
                    ),
                    plain: concat!(
                        "00004d817f000001eead2a1d986f2628",
                        "c023f0f9000000000000000000000000",
                        "7bbbd217c95c75aad48cd27719aa6cb1",
                    ),
                },
                Msg {
                    what: "encr Start-Ack",
                    wire: concat!(
                        "ddf9d2cb22e7fa8f81baf00b5e8ef2d3",
                        "2815291fb3693bebf291d9d539a2dc8a",
                    ),
                    plain: concat!(
                        "00000000000000000000000000000000",
                        "af6fe21c9799ee7f742f2caebeb8ae83",
                    ),
                },
            ],
            c2s: [
                Msg {
                    what: "encr Request-TW-Session",
                    wire: concat!(
                        "f9c560dbe962eb1239ccb8f7e45ea8eb",
                        "41cf1c3008d32adfaeac7a2b21d01c82",
                        "ac429459b601adabf520bf9860d6d48e",
                        "dda980259222be52a987ba22bdc3dc48",
                        "f63d4263ef054cb113d8b995ddf73e8b",
                        "c75fc1df713c14bcb024fabffcb8992e",
                        "c3f74c9261380b776bea52bfd4f8cfcb",
                    ),
                    plain: concat!(
                        "0504000000000000000000004e5d4e5d",
                        "7f000001000000000000000000000000",
                        "7f000001000000000000000000000000",
                        "00000000000000000000000000000000",
                        "00000040eead2a1e9ad080b600000002",
                        "00d477bc000000000000000000000000",
                        "213d5f6b31205f1985e7da743eecd3a1",
                    ),
                },
                Msg {
                    what: "encr Start-Sessions",
                    wire: concat!(
                        "4337289b646ae34fc75ad202a3d9d070",
                        "4bea8e424164889e27e89346ac2048fe",
                    ),
                    plain: concat!(
                        "02000000000000000000000000000000",
                        "51f25b5d63f2e20f50613c357b5d7f5f",
                    ),
                },
                Msg {
                    what: "encr Stop-Sessions",
                    wire: concat!(
                        "57c6b66c339fdc8abc3d001362a75187",
                        "5d390ca299a4d99697064e0bc9c4aced",
                    ),
                    plain: concat!(
                        "03000000000000010000000000000000",
                        "01f0ca6fea5d77dd594df5b215e1762a",
                    ),
                },
            ],
        },
    ];

    /// The Control-Client's cipher: sends with Client-IV, receives with Server-IV.
    fn client(s: &Stream) -> ControlCipher {
        ControlCipher::new(&session_keys(s), unhex_n(s.client_iv), unhex_n(s.server_iv))
    }

    /// The Server's cipher: sends with Server-IV, receives with Client-IV.
    fn server(s: &Stream) -> ControlCipher {
        ControlCipher::new(&session_keys(s), unhex_n(s.server_iv), unhex_n(s.client_iv))
    }

    /// Decrypts and verifies one direction as the receiver does; the first message of `msgs`
    /// is an unmacced block when `first_unmacced`.
    fn receive_all(rx: &mut ControlCipher, msgs: &[Msg], first_unmacced: bool) {
        for (i, m) in msgs.iter().enumerate() {
            let mut buf = unhex(m.wire);
            rx.decrypt(&mut buf).expect("whole blocks");
            assert_eq!(buf, unhex(m.plain), "plaintext of {}", m.what);
            if i == 0 && first_unmacced {
                rx.feed_recv(&buf);
            } else {
                assert_eq!(rx.verify(&buf), Ok(()), "HMAC of {}", m.what);
            }
        }
    }

    /// Seals one direction as the sender does, from plaintext with a zeroed HMAC field.
    fn send_all(tx: &mut ControlCipher, msgs: &[Msg], first_unmacced: bool) {
        for (i, m) in msgs.iter().enumerate() {
            let mut buf = unhex(m.plain);
            if i == 0 && first_unmacced {
                tx.encrypt_unmacced(&mut buf).expect("whole blocks");
            } else {
                let n = buf.len();
                buf[n - HMAC_LEN..].fill(0);
                tx.seal(&mut buf).expect("whole message");
            }
            assert_eq!(buf, unhex(m.wire), "wire bytes of {}", m.what);
        }
    }

    #[test]
    fn replay_server_to_client() {
        for c in &CAPTURES {
            receive_all(&mut client(c.stream), &c.s2c, true);
        }
    }

    #[test]
    fn replay_client_to_server() {
        for c in &CAPTURES {
            receive_all(&mut server(c.stream), &c.c2s, false);
        }
    }

    #[test]
    fn reseal_server_to_client() {
        for c in &CAPTURES {
            send_all(&mut server(c.stream), &c.s2c, true);
        }
    }

    #[test]
    fn reseal_client_to_server() {
        for c in &CAPTURES {
            send_all(&mut client(c.stream), &c.c2s, false);
        }
    }

    #[test]
    fn decrypt_may_be_split_across_calls() {
        // The Server reads a command's first block, then the rest.
        let c = &CAPTURES[1];
        let mut rx = server(c.stream);
        let mut buf = unhex(c.c2s[0].wire);
        let (head, rest) = buf.split_at_mut(BLOCK);
        rx.decrypt(head).expect("one block");
        rx.decrypt(rest).expect("six blocks");
        assert_eq!(buf, unhex(c.c2s[0].plain));
        assert_eq!(rx.verify(&buf), Ok(()));
    }

    #[test]
    fn accept_session_hmac_needs_start_time_block() {
        // Skipping feed_recv (Server-Start's last block) breaks Accept-Session's HMAC: the
        // Server's first HMAC covers Start-Time ‖ MBZ too.
        let c = &CAPTURES[0];
        let mut rx = client(c.stream);
        let mut ss = unhex(c.s2c[0].wire);
        rx.decrypt(&mut ss).expect("one block");
        let mut acc = unhex(c.s2c[1].wire);
        rx.decrypt(&mut acc).expect("three blocks");
        assert_eq!(rx.verify(&acc), Err(Error::BadHmac));
    }

    #[test]
    fn tampered_message_is_bad_hmac() {
        for c in &CAPTURES {
            for (bit_at, flip) in [(0usize, 0x01u8), (20, 0x80), (40, 0x10)] {
                // Flip a bit in Accept-Session's ciphertext (body or HMAC block).
                let mut rx = client(c.stream);
                let mut ss = unhex(c.s2c[0].wire);
                rx.decrypt(&mut ss).expect("one block");
                rx.feed_recv(&ss);
                let mut acc = unhex(c.s2c[1].wire);
                acc[bit_at] ^= flip;
                rx.decrypt(&mut acc).expect("three blocks");
                assert_eq!(
                    rx.verify(&acc),
                    Err(Error::BadHmac),
                    "{} octet {bit_at}",
                    c.s2c[1].what
                );
            }
            // Flip a bit in the decrypted Start-Sessions plaintext.
            let mut rx = server(c.stream);
            let mut req = unhex(c.c2s[0].wire);
            rx.decrypt(&mut req).expect("whole blocks");
            assert_eq!(rx.verify(&req), Ok(()));
            let mut start = unhex(c.c2s[1].wire);
            rx.decrypt(&mut start).expect("whole blocks");
            start[1] ^= 0x04;
            assert_eq!(rx.verify(&start), Err(Error::BadHmac));
        }
    }

    #[test]
    fn lengths_are_checked_before_anything_changes() {
        let mut c = client(AUTH0);
        let mut short = [0u8; 15];
        assert_eq!(c.seal(&mut short), Err(Error::Length { need: 16, got: 15 }));
        assert_eq!(c.verify(&short), Err(Error::Length { need: 16, got: 15 }));
        assert_eq!(c.seal(&mut []), Err(Error::Length { need: 16, got: 0 }));
        let mut odd = [0u8; 33];
        assert_eq!(c.seal(&mut odd), Err(Error::Length { need: 48, got: 33 }));
        assert_eq!(
            c.decrypt(&mut odd),
            Err(Error::Length { need: 48, got: 33 })
        );
        assert_eq!(
            c.encrypt_unmacced(&mut odd),
            Err(Error::Length { need: 48, got: 33 })
        );
        assert_eq!(odd, [0u8; 33]);
        // The chains were not advanced: the capture still replays.
        let cap = &CAPTURES[0];
        send_all(&mut c, &cap.c2s, false);
    }

    #[test]
    fn debug_hides_state() {
        assert_eq!(format!("{:?}", client(AUTH0)), "ControlCipher { .. }");
    }
}
