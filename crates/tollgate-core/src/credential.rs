//! [`CredentialSource`]: where a credential is read from, and the checks every tollgate crate
//! applies before looking at it (one copy only, a length cap, a safe charset); [`Credential`],
//! what it finds.

use std::borrow::Cow;
use std::ops::Deref;

use http::header::{AUTHORIZATION, COOKIE};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use crate::{AuthError, Challenge};

/// Where to find a credential in a request, and how long it may be.
///
/// A source has one or more locations: the `Authorization: Bearer` header (RFC 6750 §2.1),
/// a named header such as `x-api-key`, a named cookie, or a named query parameter
/// (RFC 6750 §2.3; opt-in, see [`query`](Self::query)). A request that carries the credential
/// in two locations, or twice in one, is malformed (400 `invalid_request`, RFC 6750 §2). The
/// length cap is checked before any other work, so an oversized credential costs nothing.
///
/// The [`AuthLayer`](crate::AuthLayer) reads an authenticator's source
/// ([`Authenticator::credential_source`](crate::Authenticator::credential_source)) to mark
/// the credential sensitive, to strip it, to tell "no credential at all" from "a credential
/// nobody here accepts", and to derive the challenges of a 401.
///
/// ```
/// use http::Request;
/// use tollgate_core::{CredentialSource, Via};
///
/// let source = CredentialSource::bearer().max_len(64);
/// let (parts, ()) = Request::builder()
///     .header("authorization", "bearer abc.def-ghi")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let found = source.find(&parts).unwrap().unwrap();
/// assert_eq!(found.as_str(), "abc.def-ghi");
/// assert_eq!(found.via(), Via::Bearer);
///
/// let (parts, ()) = Request::builder()
///     .header("authorization", "Basic dXNlcg==")
///     .body(())
///     .unwrap()
///     .into_parts();
/// assert!(source.find(&parts).unwrap().is_none()); // not a bearer credential
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSource {
    locations: Vec<Location>,
    max_len: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    Bearer,
    Dpop,
    Header(HeaderName),
    Cookie(Box<str>),
    Query(Box<str>),
}

impl Location {
    /// The `Authorization` scheme (lowercase) of an `Authorization` location, and how a
    /// credential found there was carried.
    fn authorization_scheme(&self) -> (&'static [u8], Via) {
        match self {
            Location::Dpop => (b"dpop", Via::Dpop),
            _ => (b"bearer", Via::Bearer),
        }
    }
}

/// How a found credential was carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Via {
    /// `Authorization: Bearer`.
    Bearer,
    /// `Authorization: DPoP` (RFC 9449 §7.1): a sender-constrained token, whose proof the
    /// authenticator checks.
    Dpop,
    /// A named header.
    Header,
    /// A named cookie.
    Cookie,
    /// A query parameter.
    Query,
}

/// The length cap of a source that sets none, in bytes. Authenticators apply their own
/// (API keys 512, JWTs 8 KiB) when the source they are given has none.
pub const DEFAULT_MAX_CREDENTIAL_LEN: usize = 4096;

/// A credential found in a request by a [`CredentialSource`]: already checked for length and
/// charset. Borrowed from the request (a query parameter is decoded, and owned, only when it
/// was percent-encoded). Dereferences to `str`; `Debug` never shows it.
pub struct Credential<'r> {
    value: Cow<'r, str>,
    via: Via,
}

impl Credential<'_> {
    /// The credential.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// How it was carried.
    pub fn via(&self) -> Via {
        self.via
    }

    /// Whether it has the shape of a JWT (see [`is_jwt_shaped`]).
    pub fn is_jwt_shaped(&self) -> bool {
        is_jwt_shaped(&self.value)
    }
}

impl Deref for Credential<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.value
    }
}

impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("via", &self.via)
            .finish_non_exhaustive()
    }
}

/// Whether `token` has the shape of a JWS or JWE in compact form: dot-separated parts (three
/// for a JWS), the first not empty and the base64url encoding of something that starts with
/// `{` (a JSON object, as every JOSE header is), the second not empty. Nothing is decoded or
/// verified (the JWT authenticator then parses the token strictly); this is what lets an
/// API-key or introspection authenticator leave JWTs to the JWT authenticator, and the JWT
/// authenticator leave opaque tokens to the others, for a few dozen instructions: only the
/// header and the signature are scanned, for their dots.
///
/// ```
/// use tollgate_core::is_jwt_shaped;
///
/// assert!(is_jwt_shaped("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"));
/// assert!(!is_jwt_shaped("sk_live_0123456789"));
/// assert!(!is_jwt_shaped("a.b.c"));            // "a" is no JSON header
/// assert!(!is_jwt_shaped("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0")); // two parts
/// ```
pub fn is_jwt_shaped(token: &str) -> bool {
    let bytes = token.as_bytes();
    // The first base64url character carries the top six bits of `{` (0x7B): `e`; the second
    // the last two (`11`) and four more: one of `w`–`z`, `0`–`9`, `-`, `_`.
    let starts_with_brace = bytes.first() == Some(&b'e')
        && matches!(bytes.get(1), Some(b'w'..=b'z' | b'0'..=b'9' | b'-' | b'_'));
    if !starts_with_brace {
        return false;
    }
    match (token.find('.'), token.rfind('.')) {
        (Some(first), Some(last)) => last > first + 1,
        _ => false,
    }
}

impl CredentialSource {
    fn at(location: Location) -> Self {
        CredentialSource {
            locations: vec![location],
            max_len: None,
        }
    }

    /// `Authorization: Bearer <token>` (RFC 6750 §2.1): the scheme is case-insensitive, the
    /// token must be a b64token, exactly one `Authorization` header may be sent.
    pub fn bearer() -> Self {
        Self::at(Location::Bearer)
    }

    /// `Authorization: DPoP <token>` (RFC 9449 §7.1): the same token syntax and checks as
    /// [`bearer`](Self::bearer), for a sender-constrained token whose `DPoP` proof header
    /// the authenticator then verifies. Authenticators add it themselves where DPoP is
    /// allowed (`Issuer::dpop` in `tollgate-jwt`).
    pub fn dpop() -> Self {
        Self::at(Location::Dpop)
    }

    /// A named header carrying the bare credential (for example `x-api-key`).
    pub fn header(name: HeaderName) -> Self {
        Self::at(Location::Header(name))
    }

    /// A named cookie. Opt-in only: cookies are sent by browsers automatically, so a
    /// cookie-authenticated route needs CSRF protection of its own.
    pub fn cookie(name: impl Into<Box<str>>) -> Self {
        Self::at(Location::Cookie(name.into()))
    }

    /// A query parameter, such as RFC 6750 §2.3's `access_token`, for clients that cannot
    /// set headers (browser WebSocket and EventSource). Opt-in only, and with risks: URLs end
    /// up in proxy and server logs, browser history and `Referer` headers, so a token sent
    /// this way should be short-lived. The layer removes the parameter from the URI before
    /// the inner service (and any logger behind the layer) sees the request, and adds
    /// `Cache-Control: private` to successful answers that lack a `Cache-Control`
    /// (RFC 6750 §2.3); loggers *in front of* the layer still see it.
    ///
    /// The value is form-decoded (`%2B` is `+`); it must then be a b64token.
    pub fn query(name: impl Into<Box<str>>) -> Self {
        Self::at(Location::Query(name.into()))
    }

    /// Also accepts `Authorization: Bearer`.
    pub fn also_bearer(self) -> Self {
        self.also(Location::Bearer)
    }

    /// Also accepts `Authorization: DPoP` (see [`dpop`](Self::dpop)).
    pub fn also_dpop(self) -> Self {
        self.also(Location::Dpop)
    }

    /// Also accepts the named header.
    pub fn also_header(self, name: HeaderName) -> Self {
        self.also(Location::Header(name))
    }

    /// Also accepts the named cookie (see [`cookie`](Self::cookie)).
    pub fn also_cookie(self, name: impl Into<Box<str>>) -> Self {
        self.also(Location::Cookie(name.into()))
    }

    /// Also accepts the named query parameter (see [`query`](Self::query)).
    pub fn also_query(self, name: impl Into<Box<str>>) -> Self {
        self.also(Location::Query(name.into()))
    }

    /// Every location of `self` and of `other`; the cap is the larger of the two. This is
    /// what two authenticators side by side ([`Or`](crate::Or)) read between them.
    pub fn union(mut self, other: &CredentialSource) -> Self {
        for location in &other.locations {
            self = self.also(location.clone());
        }
        self.max_len = match (self.max_len, other.max_len) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self
    }

    fn also(mut self, location: Location) -> Self {
        if !self.locations.contains(&location) {
            self.locations.push(location);
        }
        self
    }

    /// Sets the largest credential accepted, in bytes (default: the authenticator's own,
    /// else [`DEFAULT_MAX_CREDENTIAL_LEN`]). A longer one is refused as `invalid_token` before
    /// anything else looks at it.
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = Some(max_len);
        self
    }

    /// Sets the cap to `max_len` unless one was set: how an authenticator applies its own
    /// default to the source it is given.
    pub fn max_len_if_unset(mut self, max_len: usize) -> Self {
        self.max_len.get_or_insert(max_len);
        self
    }

    /// The cap in force, in bytes.
    pub fn length_limit(&self) -> usize {
        self.max_len.unwrap_or(DEFAULT_MAX_CREDENTIAL_LEN)
    }

    /// Whether the source reads `Authorization: Bearer`.
    pub fn reads_bearer(&self) -> bool {
        self.locations.contains(&Location::Bearer)
    }

    /// Whether the source reads `Authorization: DPoP`.
    pub fn reads_dpop(&self) -> bool {
        self.locations.contains(&Location::Dpop)
    }

    /// Finds the credential: `Ok(None)` when the request carries none here, `Err` when what it
    /// carries is malformed (`invalid_request`) or too long (`invalid_token`).
    pub fn find<'r>(&self, parts: &'r Parts) -> Result<Option<Credential<'r>>, AuthError> {
        let mut found: Option<Credential<'r>> = None;
        for location in &self.locations {
            let here = match location {
                Location::Bearer | Location::Dpop => {
                    let (scheme, via) = location.authorization_scheme();
                    self.authorization_in(&parts.headers, scheme)?
                        .map(|v| (v, via))
                }
                Location::Header(name) => self
                    .header_in(&parts.headers, name)?
                    .map(|v| (v, Via::Header)),
                Location::Cookie(name) => self
                    .cookie_in(&parts.headers, name)?
                    .map(|v| (v, Via::Cookie)),
                Location::Query(name) => self.query_in(&parts.uri, name)?.map(|v| (v, Via::Query)),
            };
            if let Some((value, via)) = here {
                if found.is_some() {
                    return Err(AuthError::invalid_request(
                        "the credential was sent in more than one way",
                    ));
                }
                found = Some(Credential { value, via });
            }
        }
        Ok(found)
    }

    /// How these locations carry a bearer token, as RFC 9728's `bearer_methods_supported`
    /// names them: `header` for `Authorization: Bearer` (or `DPoP`), `query` for a query
    /// parameter (an API-key header or a cookie is neither).
    ///
    /// ```
    /// use tollgate_core::CredentialSource;
    ///
    /// let source = CredentialSource::bearer().also_query("access_token");
    /// assert_eq!(source.bearer_methods(), ["header", "query"]);
    /// ```
    pub fn bearer_methods(&self) -> Vec<&'static str> {
        let mut methods = Vec::new();
        for location in &self.locations {
            let method = match location {
                Location::Bearer | Location::Dpop => "header",
                Location::Query(_) => "query",
                Location::Header(_) | Location::Cookie(_) => continue,
            };
            if !methods.contains(&method) {
                methods.push(method);
            }
        }
        methods
    }

    /// Whether the request carries anything in one of these locations, valid or not (an
    /// `Authorization` header of another scheme does not count). The layer's optional mode
    /// lets a request through anonymously only when this is false.
    pub fn is_present(&self, parts: &Parts) -> bool {
        self.locations.iter().any(|location| match location {
            Location::Bearer | Location::Dpop => {
                let (scheme, _) = location.authorization_scheme();
                parts
                    .headers
                    .get_all(AUTHORIZATION)
                    .iter()
                    .any(|v| scheme_is(v.as_bytes(), scheme))
            }
            Location::Header(name) => parts.headers.contains_key(name),
            Location::Cookie(name) => {
                cookie_pairs(&parts.headers).any(|(k, _)| k == name.as_bytes())
            }
            Location::Query(name) => query_pairs(&parts.uri).any(|(k, _)| k == name.as_bytes()),
        })
    }

    /// Marks every header that may carry the credential as sensitive (so `Debug` and
    /// tower-http's tracing never print it), removes the credential when `strip` is set, and
    /// always removes a query credential from the URI. Called by the layer once a request is
    /// authenticated.
    pub fn guard(&self, parts: &mut Parts, strip: bool) {
        for location in &self.locations {
            match location {
                Location::Bearer | Location::Dpop if strip => {
                    let (scheme, _) = location.authorization_scheme();
                    if self
                        .authorization_in(&parts.headers, scheme)
                        .ok()
                        .flatten()
                        .is_some()
                    {
                        parts.headers.remove(AUTHORIZATION);
                    }
                }
                Location::Header(name) if strip => {
                    parts.headers.remove(name);
                }
                Location::Cookie(name) if strip => strip_cookie(&mut parts.headers, name),
                Location::Bearer | Location::Dpop => {
                    mark_sensitive(&mut parts.headers, &AUTHORIZATION)
                }
                Location::Header(name) => mark_sensitive(&mut parts.headers, name),
                Location::Cookie(_) => mark_sensitive(&mut parts.headers, &COOKIE),
                Location::Query(name) => strip_query(&mut parts.uri, name),
            }
        }
    }

    /// Whether `Cache-Control: private` is owed on a success (a query credential was used).
    pub(crate) fn used_query(&self, parts: &Parts) -> bool {
        self.locations.iter().any(|location| match location {
            Location::Query(name) => query_pairs(&parts.uri).any(|(k, _)| k == name.as_bytes()),
            _ => false,
        })
    }

    /// The challenges a 401 names for these locations: `Bearer` for the `Authorization`
    /// header and the query, `DPoP` for `Authorization: DPoP` (without its `algs`, which
    /// the authenticator adds), `ApiKey` with the header's name for each header; cookies
    /// name none (a browser session has no challenge scheme).
    pub fn challenges(&self) -> Vec<Challenge> {
        let mut out: Vec<Challenge> = Vec::new();
        for location in &self.locations {
            let challenge = match location {
                Location::Bearer | Location::Query(_) => Challenge::bearer(),
                Location::Dpop => Challenge::new("DPoP"),
                Location::Header(name) => Challenge::api_key(name),
                Location::Cookie(_) => continue,
            };
            if !out.contains(&challenge) {
                out.push(challenge);
            }
        }
        out
    }

    /// The token of an `Authorization: <scheme> <token>` header (`scheme` lowercase).
    fn authorization_in<'h>(
        &self,
        headers: &'h HeaderMap,
        scheme: &[u8],
    ) -> Result<Option<Cow<'h, str>>, AuthError> {
        let Some(value) = single(headers, &AUTHORIZATION)? else {
            return Ok(None);
        };
        let bytes = value.as_bytes();
        if !scheme_is(bytes, scheme) {
            // Another scheme (Basic, Digest...) is not this location's credential.
            return Ok(None);
        }
        let scheme_end = bytes.iter().position(|&b| b == b' ').unwrap_or(bytes.len());
        self.check(
            trim_spaces(&bytes[scheme_end..]),
            is_b64token,
            "the bearer token has characters outside the b64token syntax",
        )
        .map(|v| Some(Cow::Borrowed(v)))
    }

    fn header_in<'h>(
        &self,
        headers: &'h HeaderMap,
        name: &HeaderName,
    ) -> Result<Option<Cow<'h, str>>, AuthError> {
        match single(headers, name)? {
            Some(value) => self
                .check(trim_spaces(value.as_bytes()), is_visible, NOT_VISIBLE)
                .map(|v| Some(Cow::Borrowed(v))),
            None => Ok(None),
        }
    }

    fn cookie_in<'h>(
        &self,
        headers: &'h HeaderMap,
        name: &str,
    ) -> Result<Option<Cow<'h, str>>, AuthError> {
        let mut found = None;
        for pair in cookie_pairs(headers) {
            if pair.0 == name.as_bytes() {
                if found.is_some() {
                    return Err(AuthError::invalid_request(
                        "the credential cookie was sent more than once",
                    ));
                }
                found = Some(pair.1);
            }
        }
        found
            .map(|v| self.check(v, is_visible, NOT_VISIBLE).map(Cow::Borrowed))
            .transpose()
    }

    fn query_in<'u>(&self, uri: &'u Uri, name: &str) -> Result<Option<Cow<'u, str>>, AuthError> {
        let mut found = None;
        for (key, value) in query_pairs(uri) {
            if key == name.as_bytes() {
                if found.is_some() {
                    return Err(AuthError::invalid_request(
                        "the credential parameter was sent more than once",
                    ));
                }
                found = Some(value);
            }
        }
        let Some(raw) = found else { return Ok(None) };
        // Length first, on the raw form (decoding only shrinks it).
        if raw.len() > self.length_limit().saturating_mul(3) {
            return Err(AuthError::invalid_token("the credential is too long"));
        }
        let complaint = "the token parameter has characters outside the b64token syntax";
        if !raw.contains(&b'%') {
            return self
                .check(raw, is_b64token, complaint)
                .map(|v| Some(Cow::Borrowed(v)));
        }
        let decoded = percent_decode(raw)
            .ok_or_else(|| AuthError::invalid_request("the token parameter is badly encoded"))?;
        self.check(&decoded, is_b64token, complaint)?;
        // `check` proved it ASCII.
        Ok(Some(Cow::Owned(
            String::from_utf8(decoded).unwrap_or_default(),
        )))
    }

    /// The checks every credential passes: length first, then not empty, then the characters
    /// `allowed` where it is (at most visible ASCII, which also makes it valid UTF-8), in one
    /// pass over the credential; `complaint` says what is wrong otherwise.
    fn check<'h>(
        &self,
        credential: &'h [u8],
        allowed: impl Fn(u8) -> bool,
        complaint: &'static str,
    ) -> Result<&'h str, AuthError> {
        if credential.len() > self.length_limit() {
            return Err(AuthError::invalid_token("the credential is too long"));
        }
        if credential.is_empty() {
            return Err(AuthError::invalid_request("the credential is empty"));
        }
        if !all_bytes(credential, allowed) {
            return Err(AuthError::invalid_request(complaint));
        }
        std::str::from_utf8(credential)
            .map_err(|_| AuthError::invalid_request("the credential is not valid text"))
    }
}

/// Whether an `Authorization` value starts with `scheme` (lowercase), case-insensitively.
fn scheme_is(value: &[u8], scheme: &[u8]) -> bool {
    let end = value.iter().position(|&b| b == b' ').unwrap_or(value.len());
    value[..end].eq_ignore_ascii_case(scheme)
}

/// The one value of header `name`, `None` if absent, `invalid_request` if repeated.
fn single<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'h HeaderValue>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(AuthError::invalid_request(
            "the credential header was sent more than once",
        ));
    }
    Ok(first)
}

/// Whether every byte passes `ok`, without stopping at the first that fails: the loop has no
/// early exit, so it compiles to vector code (a 1 KB JWT is checked in a few dozen cycles
/// rather than a branch per byte). Credentials are capped in length before this runs.
fn all_bytes(bytes: &[u8], ok: impl Fn(u8) -> bool) -> bool {
    bytes.iter().fold(true, |all, &b| all & ok(b))
}

const NOT_VISIBLE: &str = "the credential contains characters that are not allowed";

/// Visible ASCII: what an API key or a cookie credential may contain.
fn is_visible(b: u8) -> bool {
    b.is_ascii_graphic()
}

/// RFC 6750 §2.1 b64token characters (the trailing `=` padding included); all visible ASCII.
fn is_b64token(b: u8) -> bool {
    b.is_ascii_alphanumeric() | matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

fn trim_spaces(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// `(name, value)` pairs of every `Cookie` header (RFC 6265 §4.2.1).
fn cookie_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .filter_map(|pair| {
            let pair = trim_spaces(pair);
            let eq = pair.iter().position(|&b| b == b'=')?;
            Some((trim_spaces(&pair[..eq]), trim_spaces(&pair[eq + 1..])))
        })
}

/// `(name, raw value)` pairs of the query string (names compared undecoded: credential
/// parameter names are plain ASCII).
fn query_pairs(uri: &Uri) -> impl Iterator<Item = (&[u8], &[u8])> {
    uri.query()
        .unwrap_or_default()
        .as_bytes()
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &b""[..]),
        })
}

/// Decodes `%XX` escapes; `None` for a malformed one.
fn percent_decode(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if b == b'%' {
            let hex = |b: Option<&u8>| (*b? as char).to_digit(16);
            let (hi, lo) = (hex(bytes.next())?, hex(bytes.next())?);
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

fn mark_sensitive(headers: &mut HeaderMap, name: &HeaderName) {
    // Unless some header is repeated (then `len` exceeds `keys_len`), `name` has at most one
    // value, and `get_mut` reaches it without the entry API's reservation work.
    if headers.len() == headers.keys_len() {
        if let Some(value) = headers.get_mut(name) {
            value.set_sensitive(true);
        }
    } else if let http::header::Entry::Occupied(mut entry) = headers.entry(name) {
        for value in entry.iter_mut() {
            value.set_sensitive(true);
        }
    }
}

/// Rewrites the `Cookie` header without the cookie `name`, keeping the others.
fn strip_cookie(headers: &mut HeaderMap, name: &str) {
    let kept: Vec<&[u8]> = headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .map(trim_spaces)
        .filter(|pair| {
            let key = pair.split(|&b| b == b'=').next().unwrap_or_default();
            trim_spaces(key) != name.as_bytes() && !pair.is_empty()
        })
        .collect();
    let joined = kept.join(&b"; "[..]);
    headers.remove(COOKIE);
    if joined.is_empty() {
        return;
    }
    if let Ok(mut value) = HeaderValue::from_bytes(&joined) {
        value.set_sensitive(true);
        headers.insert(COOKIE, value);
    }
}

/// Rewrites the URI without the query parameter `name`, keeping the others.
fn strip_query(uri: &mut Uri, name: &str) {
    let Some(query) = uri.query() else { return };
    if !query_pairs(uri).any(|(k, _)| k == name.as_bytes()) {
        return;
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(name))
        .collect();
    let path_and_query = match kept.is_empty() {
        true => uri.path().to_owned(),
        false => format!("{}?{}", uri.path(), kept.join("&")),
    };
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    if let Ok(rebuilt) = Uri::from_parts(parts) {
        *uri = rebuilt;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str) -> Parts {
        http::Request::builder()
            .uri(uri)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn query_tokens_are_decoded_and_stripped() {
        let source = CredentialSource::query("access_token");
        let p = parts("/ws?room=1&access_token=a%2Bb%3D&x=2");
        assert_eq!(source.find(&p).unwrap().unwrap().as_str(), "a+b=");
        assert!(parts("/ws?access_token=%zz").uri.query().is_some());
        assert!(source.find(&parts("/ws?access_token=%zz")).is_err());
        assert!(
            source
                .find(&parts("/ws?access_token=a&access_token=b"))
                .is_err()
        );
        let mut p = parts("/ws?room=1&access_token=abc&x=2");
        source.guard(&mut p, false);
        assert_eq!(p.uri, "/ws?room=1&x=2");
        let mut p = parts("/ws?access_token=abc");
        source.guard(&mut p, false);
        assert_eq!(p.uri, "/ws");
    }

    #[test]
    fn jwt_shape() {
        assert!(is_jwt_shaped("eyJhbGciOiJub25lIn0.e30."));
        assert!(!is_jwt_shaped("eyJhbGciOiJub25lIn0..sig"));
        // A JWE's five parts are a JOSE shape too: for the JWT authenticator to refuse.
        assert!(is_jwt_shaped("eyJhbGciOiJub25lIn0.e30.a.b.c"));
        assert!(!is_jwt_shaped("W10K.e30.sig")); // `[]` is not an object
        // Every header that starts with `{`, whatever follows: `{"`, `{ `, `{\n`, `{}`.
        for header in ["eyJ", "eyA", "ewo", "e30"] {
            assert!(is_jwt_shaped(&format!("{header}.e30.sig")), "{header}");
        }
    }
}
