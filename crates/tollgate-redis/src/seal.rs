//! What tollgate writes to Redis, and how it knows it wrote it: keys and messages derived
//! from a secret, values sealed with it.
//!
//! Keys are an HMAC of the credential digest, so a dump names no credential and cannot be
//! joined with the key service's own digests. Values carry a verdict (never a credential), an
//! expiry, and an HMAC over the key, the expiry and the verdict: a value forged without the
//! secret, copied to another key, or replayed after its expiry is refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tollgate_core::CredentialDigest;

type HmacSha256 = Hmac<Sha256>;

const TAG: usize = 32;
const EXPIRY: usize = 8;

/// The secret and what is derived from it.
#[derive(Clone)]
pub(crate) struct Seal {
    secret: Vec<u8>,
}

impl Seal {
    /// The shortest secret accepted: 256 bits, HMAC-SHA-256's own strength.
    pub(crate) const MIN_SECRET: usize = 32;

    pub(crate) fn new(secret: &[u8]) -> Self {
        Seal {
            secret: secret.to_vec(),
        }
    }

    fn mac(&self, domain: &[u8], parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key");
        mac.update(domain);
        for part in parts {
            // Length-prefixed: no two different lists of parts feed the same bytes.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// The Redis key's name part for `digest`.
    pub(crate) fn key_id(&self, digest: &CredentialDigest) -> String {
        let mac = self.mac(b"tollgate-redis key v1", &[digest.as_bytes()]);
        hex::encode(mac.finalize().into_bytes())
    }

    /// `verdict`, stored under `key` until `ttl` from now.
    pub(crate) fn seal(&self, key: &str, verdict: &[u8], ttl: Duration) -> Vec<u8> {
        let expiry = to_millis(SystemTime::now() + ttl).to_be_bytes();
        let tag = self
            .value_mac(key, &expiry, verdict)
            .finalize()
            .into_bytes();
        let mut value = Vec::with_capacity(TAG + EXPIRY + verdict.len());
        value.extend_from_slice(&tag);
        value.extend_from_slice(&expiry);
        value.extend_from_slice(verdict);
        value
    }

    /// The verdict in `value` read from `key`, if this secret sealed it there and it has not
    /// expired.
    pub(crate) fn open(&self, key: &str, value: &[u8]) -> Option<Vec<u8>> {
        if value.len() < TAG + EXPIRY {
            return None;
        }
        let (tag, rest) = value.split_at(TAG);
        let (expiry, verdict) = rest.split_at(EXPIRY);
        // `verify_slice` compares in constant time.
        self.value_mac(key, expiry, verdict)
            .verify_slice(tag)
            .ok()?;
        let expiry = u64::from_be_bytes(expiry.try_into().ok()?);
        (expiry > to_millis(SystemTime::now())).then(|| verdict.to_vec())
    }

    fn value_mac(&self, key: &str, expiry: &[u8], verdict: &[u8]) -> HmacSha256 {
        self.mac(
            b"tollgate-redis value v1",
            &[key.as_bytes(), expiry, verdict],
        )
    }

    /// A revocation message for the replicas: `body`, sealed.
    pub(crate) fn seal_message(&self, channel: &str, body: &[u8]) -> Vec<u8> {
        let tag = self.message_mac(channel, body).finalize().into_bytes();
        [&tag[..], body].concat()
    }

    /// The body of a revocation message, if this secret sealed it.
    pub(crate) fn open_message<'m>(&self, channel: &str, message: &'m [u8]) -> Option<&'m [u8]> {
        if message.len() < TAG {
            return None;
        }
        let (tag, body) = message.split_at(TAG);
        self.message_mac(channel, body).verify_slice(tag).ok()?;
        Some(body)
    }

    fn message_mac(&self, channel: &str, body: &[u8]) -> HmacSha256 {
        self.mac(b"tollgate-redis message v1", &[channel.as_bytes(), body])
    }
}

/// `at` in milliseconds since the epoch (0 before it).
pub(crate) fn to_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_sealed_value_opens_under_its_key_only() {
        let seal = Seal::new(SECRET);
        let value = seal.seal("k1", b"{\"valid\":1}", HOUR);
        assert_eq!(
            seal.open("k1", &value).as_deref(),
            Some(&b"{\"valid\":1}"[..])
        );
        assert_eq!(seal.open("k2", &value), None, "copied to another key");
        assert_eq!(
            Seal::new(&[7; 32]).open("k1", &value),
            None,
            "another secret"
        );
        let mut forged = value.clone();
        *forged.last_mut().unwrap() ^= 1;
        assert_eq!(seal.open("k1", &forged), None, "a changed verdict");
        assert_eq!(seal.open("k1", b"short"), None);
    }

    #[test]
    fn an_expired_value_does_not_open() {
        let seal = Seal::new(SECRET);
        let value = seal.seal("k1", b"v", Duration::ZERO);
        assert_eq!(seal.open("k1", &value), None);
    }

    #[test]
    fn keys_name_no_credential_and_depend_on_the_secret() {
        let digest = CredentialDigest::of("sk_live_secret");
        let key = Seal::new(SECRET).key_id(&digest);
        assert_eq!(key.len(), 64);
        assert_ne!(key, hex::encode(digest.as_bytes()));
        assert_ne!(key, Seal::new(&[7; 32]).key_id(&digest));
    }

    #[test]
    fn messages_open_only_on_their_channel_under_their_secret() {
        let seal = Seal::new(SECRET);
        let message = seal.seal_message("c", b"all");
        assert_eq!(seal.open_message("c", &message), Some(&b"all"[..]));
        assert_eq!(seal.open_message("d", &message), None);
        assert_eq!(Seal::new(&[7; 32]).open_message("c", &message), None);
    }
}
