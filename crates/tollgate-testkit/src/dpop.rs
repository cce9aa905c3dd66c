//! [`DpopKey`]: a client's DPoP key for tests, and [`ProofBuilder`]: its proofs (RFC 9449
//! §4.2), good or broken in each way a resource server must refuse.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::SigningKey;

/// A DPoP key pair, as a client holds one.
///
/// ```
/// use tollgate_testkit::DpopKey;
///
/// let key = DpopKey::generate(jsonwebtoken::Algorithm::ES256);
/// let proof = key.proof("GET", "https://api.example.com/orders").access_token("tok").build();
/// assert_eq!(proof.split('.').count(), 3);
/// assert_eq!(key.thumbprint().len(), 43);
/// ```
#[derive(Clone)]
pub struct DpopKey {
    key: SigningKey,
    public: Value,
}

impl DpopKey {
    /// Generates a key for `alg` (see [`SigningKey::generate`]).
    pub fn generate(alg: Algorithm) -> Self {
        let key = SigningKey::generate("dpop", alg);
        let mut public = key.jwk();
        if let Some(members) = public.as_object_mut() {
            members.remove("kid");
            members.remove("use");
        }
        DpopKey { key, public }
    }

    /// The public JWK a proof carries.
    pub fn jwk(&self) -> &Value {
        &self.public
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url: what a token bound to this key carries
    /// as `cnf.jkt`.
    pub fn thumbprint(&self) -> String {
        let jwk: Jwk = serde_json::from_value(self.public.clone()).expect("a public JWK");
        jwk.thumbprint(ThumbprintHash::SHA256)
            .expect("a thumbprint")
    }

    /// `{"jkt": <thumbprint>}`, the `cnf` claim of a token bound to this key.
    pub fn cnf(&self) -> Value {
        json!({ "jkt": self.thumbprint() })
    }

    /// A proof for `method` and `url`, issued now with a random `jti`.
    pub fn proof(&self, method: &str, url: &str) -> ProofBuilder<'_> {
        let mut claims = Map::new();
        claims.insert("htm".into(), method.into());
        claims.insert("htu".into(), url.into());
        claims.insert("iat".into(), now().into());
        claims.insert("jti".into(), random_id().into());
        let mut header = Map::new();
        header.insert("typ".into(), "dpop+jwt".into());
        header.insert("alg".into(), format!("{:?}", self.key.alg()).into());
        header.insert("jwk".into(), self.public.clone());
        ProofBuilder {
            key: self,
            header,
            claims,
            signer: None,
            unsigned: false,
            edit: None,
        }
    }
}

/// A proof being made by [`DpopKey::proof`].
#[must_use]
pub struct ProofBuilder<'k> {
    key: &'k DpopKey,
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signer: Option<SigningKey>,
    unsigned: bool,
    edit: Option<Box<dyn FnOnce(String) -> String>>,
}

impl ProofBuilder<'_> {
    /// Binds the proof to `token`: `ath` = base64url(SHA-256(token)).
    pub fn access_token(self, token: &str) -> Self {
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
        self.claim("ath", ath)
    }

    /// Sets the server nonce.
    pub fn nonce(self, nonce: &str) -> Self {
        self.claim("nonce", nonce)
    }

    /// Sets `iat` to now plus `secs` (negative for the past).
    pub fn issued_in(self, secs: i64) -> Self {
        let iat = now() + secs;
        self.claim("iat", iat)
    }

    /// Sets the `jti` (to replay one, or to collide).
    pub fn jti(self, jti: &str) -> Self {
        self.claim("jti", jti)
    }

    /// Sets a claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim.
    pub fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets a header member (`typ`, `alg`, `jwk`...), or with `Value::Null` removes it.
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        match value.into() {
            Value::Null => self.header.remove(name),
            value => self.header.insert(name.to_owned(), value),
        };
        self
    }

    /// Puts a private parameter (`d`) into the header's `jwk`, as a careless client would.
    pub fn private_key_in_header(mut self) -> Self {
        if let Some(Value::Object(jwk)) = self.header.get_mut("jwk") {
            jwk.insert("d".into(), random_id().into());
        }
        self
    }

    /// Signs with `other` while the header keeps this key's `jwk`.
    pub fn signed_by(mut self, other: &DpopKey) -> Self {
        self.signer = Some(other.key.clone());
        self
    }

    /// Signs with an HMAC secret (`alg` HS256, a symmetric `jwk`): never accepted.
    pub fn hmac(mut self) -> Self {
        let secret = SigningKey::generate("hmac", Algorithm::HS256);
        self.header.insert("alg".into(), "HS256".into());
        self.header.insert("jwk".into(), secret.jwk());
        self.signer = Some(secret);
        self
    }

    /// Rewrites the claims' JSON text before it is signed, for what a map cannot hold: a
    /// claim named twice, escaped strings (`"https:\/\/..."`), a claim of the wrong type.
    /// Members are written in name order, without spaces: `{"ath":..,"htm":"GET",..}`.
    pub fn claims_text(mut self, edit: impl FnOnce(String) -> String + 'static) -> Self {
        self.edit = Some(Box::new(edit));
        self
    }

    /// `alg: none` and no signature: never accepted.
    pub fn unsigned(mut self) -> Self {
        self.header.insert("alg".into(), "none".into());
        self.unsigned = true;
        self
    }

    /// The compact JWS, for the `DPoP` header.
    pub fn build(self) -> String {
        let header = Value::Object(self.header).to_string();
        let mut claims = Value::Object(self.claims).to_string();
        if let Some(edit) = self.edit {
            claims = edit(claims);
        }
        if self.unsigned {
            let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
            return format!("{}.{}.", b64(&header), b64(&claims));
        }
        self.signer
            .as_ref()
            .unwrap_or(&self.key.key)
            .sign_raw(&header, &claims)
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("random");
    URL_SAFE_NO_PAD.encode(bytes)
}
