//! [`DpopKey`]: the client's half of DPoP (RFC 9449): a key pair whose proofs go with token
//! requests (the authorization server then binds the token to the key) and with every
//! request that uses the bound token; and the nonces servers ask proofs to carry.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sha2::{Digest, Sha256};

/// The `DPoP` request header, and the response header that carries a server's nonce.
pub(crate) const DPOP: http::HeaderName = http::HeaderName::from_static("dpop");
pub(crate) const DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// Nonces remembered at most (one per server origin).
const MAX_NONCES: usize = 64;

/// Why a key cannot be used for DPoP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the DPoP key cannot be used: {0}")]
pub struct InvalidDpopKey(&'static str);

/// A DPoP key pair (RFC 9449): give it to [`ClientCredentials::dpop`](crate::ClientCredentials::dpop),
/// and token requests carry a proof of it, the tokens come back bound to it, and
/// [`ClientAuthLayer`](crate::ClientAuthLayer) sends each request with
/// `Authorization: DPoP <token>` and a fresh proof for its method, URL and token. A server
/// that asks for a nonce (`use_dpop_nonce`) gets the request once more, with it; the key
/// remembers the last nonce of each server. Cheap to clone; clones share the nonces.
///
/// ```
/// use tollgate_client::DpopKey;
///
/// let key = DpopKey::generate().unwrap(); // ES256, a new key each process start
/// let proof = key.proof("GET", "https://api.example.com/orders?page=2", Some("the-token")).unwrap();
/// assert_eq!(proof.split('.').count(), 3);
/// assert_eq!(key.thumbprint().len(), 43); // what the token's cnf.jkt will say
/// ```
#[derive(Clone)]
pub struct DpopKey {
    inner: Arc<Inner>,
}

struct Inner {
    key: EncodingKey,
    header: Header,
    thumbprint: String,
    nonces: Mutex<HashMap<String, String>>,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.inner.header.alg)
            .field("thumbprint", &self.inner.thumbprint)
            .finish_non_exhaustive()
    }
}

impl DpopKey {
    /// A new ES256 key (feature `aws_lc_rs`, the default). A key made at start and kept in
    /// memory is what RFC 9449 expects: its tokens die with it.
    #[cfg(feature = "aws_lc_rs")]
    pub fn generate() -> Result<Self, InvalidDpopKey> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| InvalidDpopKey("no key could be generated"))?;
        let der = pair
            .to_pkcs8v1()
            .map_err(|_| InvalidDpopKey("no key could be generated"))?;
        Self::new(EncodingKey::from_ec_der(der.as_ref()), Algorithm::ES256)
    }

    /// Your own key (PEM with `EncodingKey::from_ec_pem`, say) and its algorithm, which must
    /// be asymmetric: ES256, ES384, EdDSA, PS* or RS*.
    pub fn new(key: EncodingKey, alg: Algorithm) -> Result<Self, InvalidDpopKey> {
        if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(InvalidDpopKey("an HMAC secret is no DPoP key"));
        }
        crate::crypto::ensure_provider();
        let mut jwk = Jwk::from_encoding_key(&key, alg)
            .map_err(|_| InvalidDpopKey("its public key could not be derived for its algorithm"))?;
        jwk.common.key_algorithm = None;
        let thumbprint = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| InvalidDpopKey("its thumbprint could not be computed"))?;
        let mut header = Header::new(alg);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(jwk);
        Ok(DpopKey {
            inner: Arc::new(Inner {
                key,
                header,
                thumbprint,
                nonces: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The RFC 7638 SHA-256 thumbprint of the public key, base64url: the `cnf.jkt` of the
    /// tokens bound to it.
    pub fn thumbprint(&self) -> &str {
        &self.inner.thumbprint
    }

    /// A proof for a request of `method` to `url` (its query and fragment left out of
    /// `htu`), bound to `access_token` when one is sent with it (`ath`), carrying the
    /// nonce last heard from that server.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<String, InvalidDpopKey> {
        let htu = url.split(['?', '#']).next().unwrap_or(url);
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut claims = serde_json::json!({
            "jti": crate::token::jti(), "htm": method, "htu": htu, "iat": iat,
        });
        if let Some(token) = access_token {
            claims["ath"] = URL_SAFE_NO_PAD.encode(Sha256::digest(token)).into();
        }
        if let Some(nonce) = self.nonce_for(url) {
            claims["nonce"] = nonce.into();
        }
        jsonwebtoken::encode(&self.inner.header, &claims, &self.inner.key)
            .map_err(|_| InvalidDpopKey("the proof could not be signed"))
    }

    /// The proof as a header value.
    pub(crate) fn proof_header(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<HeaderValue, InvalidDpopKey> {
        HeaderValue::try_from(self.proof(method, url, access_token)?)
            .map_err(|_| InvalidDpopKey("the proof is not a header value"))
    }

    /// Remembers the nonce `url`'s server sent (RFC 9449 §8: the next proof carries it).
    pub(crate) fn remember_nonce(&self, url: &str, nonce: &HeaderValue) {
        let (Some(origin), Ok(nonce)) = (origin(url), nonce.to_str()) else {
            return;
        };
        if let Ok(mut nonces) = self.inner.nonces.lock() {
            if nonces.len() >= MAX_NONCES && !nonces.contains_key(origin) {
                nonces.clear();
            }
            nonces.insert(origin.to_owned(), nonce.to_owned());
        }
    }

    fn nonce_for(&self, url: &str) -> Option<String> {
        let origin = origin(url)?;
        self.inner.nonces.lock().ok()?.get(origin).cloned()
    }
}

/// `scheme://authority` of `url`.
fn origin(url: &str) -> Option<&str> {
    let rest_at = url.find("://")? + 3;
    let end = url[rest_at..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| rest_at + i);
    Some(&url[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_and_authority() {
        assert_eq!(
            origin("https://a.example:8443/x?y"),
            Some("https://a.example:8443")
        );
        assert_eq!(origin("http://a?b"), Some("http://a"));
        assert_eq!(origin("nope"), None);
    }
}
