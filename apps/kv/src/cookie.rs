//! The handshake's stateless cookie (docs/protocol.md, "The handshake and the cookie"):
//! SipHash-2-4 with 128-bit output, keyed by a secret of the 30-second epoch, over the epoch,
//! the client's address and port and its nonce. The secret of the epoch before stays
//! accepted, so a cookie is good for 30 to 60 seconds. Nothing is kept per client.

use crate::protocol::{Cookie, MAC_LEN, NONCE_LEN};
use siphasher::sip128::{Hasher128, SipHasher24};
use std::hash::Hasher;
use std::net::{IpAddr, SocketAddr};

/// The length of an epoch.
pub const EPOCH_SECS: u64 = 30;

/// The epoch of a Unix time.
pub fn epoch_of(unix_secs: u64) -> u32 {
    (unix_secs / EPOCH_SECS) as u32
}

/// The MAC of a cookie for `client` and `nonce`, made in `epoch` with `secret`.
pub fn mac(
    secret: &[u8; 16],
    epoch: u32,
    client: SocketAddr,
    nonce: &[u8; NONCE_LEN],
) -> [u8; MAC_LEN] {
    let ip = match client.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let mut h = SipHasher24::new_with_key(secret);
    h.write(&epoch.to_be_bytes());
    h.write(&ip.octets());
    h.write(&client.port().to_be_bytes());
    h.write(nonce);
    h.finish128().as_bytes()
}

/// The secrets of the current epoch and the one before.
pub struct Secrets {
    current: (u32, [u8; 16]),
    previous: Option<(u32, [u8; 16])>,
}

impl Secrets {
    pub fn new(epoch: u32, secret: [u8; 16]) -> Secrets {
        Secrets {
            current: (epoch, secret),
            previous: None,
        }
    }

    pub fn epoch(&self) -> u32 {
        self.current.0
    }

    /// Moves on to `epoch` (later than the current one) with a `fresh` secret. The current
    /// secret stays accepted if `epoch` is the next one; after a longer gap it is too old.
    pub fn rotate(&mut self, epoch: u32, fresh: [u8; 16]) {
        if epoch <= self.current.0 {
            return;
        }
        let next = self.current.0.checked_add(1) == Some(epoch);
        self.previous = next.then_some(self.current);
        self.current = (epoch, fresh);
    }

    /// A cookie for `client` and `nonce`, made now.
    pub fn make(&self, client: SocketAddr, nonce: &[u8; NONCE_LEN]) -> Cookie {
        let (epoch, secret) = &self.current;
        Cookie {
            epoch: *epoch,
            mac: mac(secret, *epoch, client, nonce),
        }
    }

    /// Whether `cookie` was made by this server, in this epoch or the one before, for
    /// `client` and `nonce`. The MACs are compared in constant time.
    pub fn check(&self, cookie: &Cookie, client: SocketAddr, nonce: &[u8; NONCE_LEN]) -> bool {
        let Some((epoch, secret)) = [Some(self.current), self.previous]
            .into_iter()
            .flatten()
            .find(|(e, _)| *e == cookie.epoch)
        else {
            return false;
        };
        let expected = mac(&secret, epoch, client, nonce);
        expected
            .iter()
            .zip(cookie.mac.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: [u8; NONCE_LEN] = [3; NONCE_LEN];

    fn client() -> SocketAddr {
        "192.0.2.7:40000".parse().unwrap()
    }

    #[test]
    fn a_cookie_holds_for_its_address_port_and_nonce_only() {
        let secrets = Secrets::new(100, [1; 16]);
        let cookie = secrets.make(client(), &NONCE);
        assert_eq!(cookie.epoch, 100);
        assert!(secrets.check(&cookie, client(), &NONCE));
        assert!(!secrets.check(&cookie, "192.0.2.8:40000".parse().unwrap(), &NONCE));
        assert!(!secrets.check(&cookie, "192.0.2.7:40001".parse().unwrap(), &NONCE));
        assert!(!secrets.check(&cookie, client(), &[4; NONCE_LEN]));
        let mut forged = cookie;
        forged.mac[15] ^= 1;
        assert!(!secrets.check(&forged, client(), &NONCE));
        // Another server's secret makes other cookies.
        assert!(!Secrets::new(100, [2; 16]).check(&cookie, client(), &NONCE));
    }

    #[test]
    fn a_cookie_is_good_for_its_epoch_and_the_next() {
        let mut secrets = Secrets::new(100, [1; 16]);
        let cookie = secrets.make(client(), &NONCE);
        secrets.rotate(101, [2; 16]);
        assert!(secrets.check(&cookie, client(), &NONCE));
        secrets.rotate(102, [3; 16]);
        assert!(!secrets.check(&cookie, client(), &NONCE));
        // After a gap of more than one epoch the old secret goes at once.
        let mut secrets = Secrets::new(100, [1; 16]);
        let cookie = secrets.make(client(), &NONCE);
        secrets.rotate(105, [2; 16]);
        assert!(!secrets.check(&cookie, client(), &NONCE));
        assert_eq!(epoch_of(3000), 100);
    }

    #[test]
    fn ipv4_clients_are_keyed_as_mapped_ipv6() {
        let v4: SocketAddr = "192.0.2.7:1".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:1".parse().unwrap();
        assert_eq!(
            mac(&[1; 16], 5, v4, &NONCE),
            mac(&[1; 16], 5, mapped, &NONCE)
        );
    }
}
