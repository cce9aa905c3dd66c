//! Reading a compact JWS once: its three parts, the JOSE header and the claims, each parsed a
//! single time and strictly (duplicate members rejected, depth bounded by serde_json).

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use tollgate_core::AuthError;

/// A token split and decoded, not yet verified.
pub(crate) struct Parsed<'t> {
    /// `header.payload`, the signed bytes.
    pub(crate) message: &'t str,
    /// The signature, still base64url (as `jsonwebtoken::crypto::verify` takes it).
    pub(crate) signature: &'t str,
    pub(crate) header: Header,
    pub(crate) claims: Map<String, Value>,
}

/// The JOSE header members tollgate looks at. `jku`, `x5u`, `jwk` and `x5c` are read only to
/// be ignored: a key is never fetched or taken from the token (RFC 8725 §3.10).
#[derive(Deserialize)]
pub(crate) struct Header {
    alg: String,
    pub(crate) kid: Option<String>,
    pub(crate) typ: Option<String>,
    crit: Option<Value>,
    /// Present in a JWE; a JWE is never accepted here.
    enc: Option<Value>,
}

fn malformed() -> AuthError {
    AuthError::invalid_token("the token is malformed")
}

/// The parts of a compact JWS, still encoded.
pub(crate) struct Compact<'t> {
    pub(crate) header: &'t str,
    pub(crate) payload: &'t str,
    /// `header.payload`, the signed bytes.
    pub(crate) message: &'t str,
    pub(crate) signature: &'t str,
}

/// Splits `token` into exactly three parts, the signature not empty.
pub(crate) fn split(token: &str) -> Result<Compact<'_>, AuthError> {
    let (message, signature) = token.rsplit_once('.').ok_or_else(malformed)?;
    let (header, payload) = message.split_once('.').ok_or_else(malformed)?;
    if payload.contains('.') || signature.is_empty() {
        return Err(malformed());
    }
    Ok(Compact {
        header,
        payload,
        message,
        signature,
    })
}

/// Decodes one base64url part.
pub(crate) fn decode_part(part: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| malformed())
}

/// A JOSE header as the splitting code needs it: whether it asks for what tollgate never
/// accepts.
pub(crate) trait JoseHeader: de::DeserializeOwned {
    /// Whether it has `crit`.
    fn has_crit(&self) -> bool;
    /// Whether it has `enc` (a JWE).
    fn has_enc(&self) -> bool;
}

impl JoseHeader for Header {
    fn has_crit(&self) -> bool {
        self.crit.is_some()
    }

    fn has_enc(&self) -> bool {
        self.enc.is_some()
    }
}

/// A compact JWS split and its header (an access token's, by default) decoded; the payload
/// still encoded.
pub(crate) struct Signed<'t, H = Header> {
    pub(crate) message: &'t str,
    pub(crate) signature: &'t str,
    pub(crate) header: H,
    /// The payload, decoded (strict base64url: no padding, no stray characters, no
    /// non-zero unused bits).
    pub(crate) payload: Vec<u8>,
}

impl<'t, H: JoseHeader> Signed<'t, H> {
    /// Splits `token`: exactly three base64url parts, a JSON-object header with no `crit`
    /// and no `enc`.
    pub(crate) fn parse(token: &'t str) -> Result<Self, AuthError> {
        let parts = split(token)?;
        let header = parse_header::<H>(parts.header)?;
        Ok(Signed {
            message: parts.message,
            signature: parts.signature,
            header,
            payload: decode_part(parts.payload)?,
        })
    }
}

/// Decodes and parses a JOSE header: a JSON object with no `crit` and no `enc`.
pub(crate) fn parse_header<H: JoseHeader>(header_b64: &str) -> Result<H, AuthError> {
    let header: H = serde_json::from_slice(&decode_part(header_b64)?)
        .map_err(|_| AuthError::invalid_token("the token header is not valid"))?;
    if header.has_crit() {
        // We implement no JWS extension, so any critical one is not understood
        // (RFC 7515 §4.1.11).
        return Err(AuthError::invalid_token(
            "the token uses a critical header extension that is not supported",
        ));
    }
    if header.has_enc() {
        return Err(AuthError::invalid_token(
            "encrypted tokens are not accepted",
        ));
    }
    Ok(header)
}

impl Header {
    /// The `alg`, if it is one jsonwebtoken implements (`none` never is).
    pub(crate) fn algorithm(&self) -> Result<Algorithm, AuthError> {
        Algorithm::from_str(&self.alg)
            .map_err(|_| AuthError::invalid_token("the token algorithm is not accepted"))
    }
}

impl<'t> Parsed<'t> {
    /// Splits and decodes `token`: a [`Signed`] JWS whose payload is a JSON object.
    pub(crate) fn parse(token: &'t str) -> Result<Self, AuthError> {
        let signed = Signed::<Header>::parse(token)?;
        let claims = strict_object(&signed.payload)
            .map_err(|_| AuthError::invalid_token("the token claims are not valid JSON"))?;
        Ok(Parsed {
            message: signed.message,
            signature: signed.signature,
            header: signed.header,
            claims,
        })
    }

    /// The `iss` claim, which must be a string.
    pub(crate) fn issuer(&self) -> Result<&str, AuthError> {
        self.claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::invalid_token("the token has no issuer"))
    }
}

/// Parses a JSON object, refusing duplicate member names at any depth (RFC 7519 §7.2), so
/// that no two parsers can read a different claim set from the same bytes.
pub(crate) fn strict_object(bytes: &[u8]) -> Result<Map<String, Value>, serde_json::Error> {
    match serde_json::from_slice::<Strict>(bytes)?.0 {
        Value::Object(map) => Ok(map),
        _ => Err(de::Error::custom("not an object")),
    }
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if out.insert(key, value).is_some() {
                return Err(de::Error::custom("duplicate member name"));
            }
        }
        Ok(Value::Object(out))
    }
}

/// A NumericDate (RFC 7519 §2) as whole seconds (a fraction is dropped), if finite.
pub(crate) fn whole_seconds(n: &serde_json::Number) -> Option<i64> {
    n.as_i64()
        .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// A NumericDate claim (RFC 7519 §2) as whole seconds; `Err` when present but not a number.
pub(crate) fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => whole_seconds(n)
            .map(Some)
            .ok_or_else(|| AuthError::invalid_token("a time claim is not a valid number")),
        Some(_) => Err(AuthError::invalid_token("a time claim is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_members_are_rejected_at_any_depth() {
        assert!(strict_object(br#"{"a":1,"a":2}"#).is_err());
        assert!(strict_object(br#"{"a":{"b":1,"b":1}}"#).is_err());
        assert!(strict_object(br#"{"a":[{"b":1,"b":1}]}"#).is_err());
        assert!(strict_object(br#"{"a":1,"b":[1,2,{"c":null}]}"#).is_ok());
        assert!(strict_object(b"[1]").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(strict_object(deep.as_bytes()).is_err());
    }

    #[test]
    fn split_needs_exactly_three_parts() {
        for bad in ["a.b", "a.b.c.d", "abc", "a..", "..", "e30.e30."] {
            assert!(Parsed::parse(bad).is_err(), "{bad}");
        }
    }
}
