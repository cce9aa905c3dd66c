//! [`CredentialSource`]: where a credential is read from, and the checks every tollgate crate
//! applies before looking at it (one copy only, a length cap, a safe charset).

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::AuthError;

/// Where to find a credential in a request, and how long it may be.
///
/// A source has one or more locations: the `Authorization: Bearer` header (RFC 6750 §2.1),
/// a named header such as `x-api-key`, or a named cookie. A request that carries the
/// credential in two locations, or twice in one, is malformed (400 `invalid_request`,
/// RFC 6750 §2). The length cap is checked before any other work, so an oversized credential
/// costs nothing. A credential is never copied: [`find`](Self::find) borrows it.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use tollgate_core::CredentialSource;
///
/// let source = CredentialSource::bearer().max_len(64);
/// let mut headers = HeaderMap::new();
/// headers.insert("authorization", HeaderValue::from_static("bearer abc.def-ghi"));
/// assert_eq!(source.find(&headers).unwrap(), Some("abc.def-ghi"));
///
/// headers.insert("authorization", HeaderValue::from_static("Basic dXNlcg=="));
/// assert_eq!(source.find(&headers).unwrap(), None); // not a bearer credential
/// ```
#[derive(Debug, Clone)]
pub struct CredentialSource {
    locations: Vec<Location>,
    max_len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    Bearer,
    Header(HeaderName),
    Cookie(Box<str>),
}

/// The default length cap, in bytes.
pub const DEFAULT_MAX_LEN: usize = 4096;

impl CredentialSource {
    fn at(location: Location) -> Self {
        CredentialSource {
            locations: vec![location],
            max_len: DEFAULT_MAX_LEN,
        }
    }

    /// `Authorization: Bearer <token>` (RFC 6750 §2.1): the scheme is case-insensitive, the
    /// token must be a b64token, exactly one `Authorization` header may be sent.
    pub fn bearer() -> Self {
        Self::at(Location::Bearer)
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

    /// Also accepts `Authorization: Bearer`.
    pub fn also_bearer(self) -> Self {
        self.also(Location::Bearer)
    }

    /// Also accepts the named header.
    pub fn also_header(self, name: HeaderName) -> Self {
        self.also(Location::Header(name))
    }

    /// Also accepts the named cookie (see [`cookie`](Self::cookie)).
    pub fn also_cookie(self, name: impl Into<Box<str>>) -> Self {
        self.also(Location::Cookie(name.into()))
    }

    fn also(mut self, location: Location) -> Self {
        if !self.locations.contains(&location) {
            self.locations.push(location);
        }
        self
    }

    /// Sets the largest credential accepted, in bytes (default: [`DEFAULT_MAX_LEN`]).
    /// A longer one is rejected as `invalid_token` before anything else looks at it.
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// The configured length cap.
    pub fn max_len_value(&self) -> usize {
        self.max_len
    }

    /// Finds the credential: `Ok(None)` when the request carries none, `Err` when what it
    /// carries is malformed (`invalid_request`) or too long (`invalid_token`).
    pub fn find<'h>(&self, headers: &'h HeaderMap) -> Result<Option<&'h str>, AuthError> {
        let mut found = None;
        for location in &self.locations {
            let here = match location {
                Location::Bearer => self.bearer_in(headers)?,
                Location::Header(name) => self.header_in(headers, name)?,
                Location::Cookie(name) => self.cookie_in(headers, name)?,
            };
            if here.is_some() {
                if found.is_some() {
                    return Err(AuthError::invalid_request(
                        "the credential was sent in more than one way",
                    ));
                }
                found = here;
            }
        }
        Ok(found)
    }

    /// Marks every header that may carry the credential as sensitive (so `Debug` and
    /// tower-http's tracing never print it), and removes the credential when `strip` is set.
    pub fn guard(&self, headers: &mut HeaderMap, strip: bool) {
        for location in &self.locations {
            match location {
                Location::Bearer if strip => {
                    if self.bearer_in(headers).ok().flatten().is_some() {
                        headers.remove(AUTHORIZATION);
                    }
                }
                Location::Header(name) if strip => {
                    headers.remove(name);
                }
                Location::Cookie(name) if strip => strip_cookie(headers, name),
                Location::Bearer => mark_sensitive(headers, &AUTHORIZATION),
                Location::Header(name) => mark_sensitive(headers, name),
                Location::Cookie(_) => mark_sensitive(headers, &COOKIE),
            }
        }
    }

    fn bearer_in<'h>(&self, headers: &'h HeaderMap) -> Result<Option<&'h str>, AuthError> {
        let Some(value) = single(headers, &AUTHORIZATION)? else {
            return Ok(None);
        };
        let bytes = value.as_bytes();
        let scheme_end = bytes.iter().position(|&b| b == b' ').unwrap_or(bytes.len());
        if !bytes[..scheme_end].eq_ignore_ascii_case(b"bearer") {
            // Another scheme (Basic, Digest...) is not a bearer credential.
            return Ok(None);
        }
        self.check(
            trim_spaces(&bytes[scheme_end..]),
            is_b64token,
            "the bearer token has characters outside the b64token syntax",
        )
        .map(Some)
    }

    fn header_in<'h>(
        &self,
        headers: &'h HeaderMap,
        name: &HeaderName,
    ) -> Result<Option<&'h str>, AuthError> {
        match single(headers, name)? {
            Some(value) => self
                .check(trim_spaces(value.as_bytes()), is_visible, NOT_VISIBLE)
                .map(Some),
            None => Ok(None),
        }
    }

    fn cookie_in<'h>(
        &self,
        headers: &'h HeaderMap,
        name: &str,
    ) -> Result<Option<&'h str>, AuthError> {
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
            .map(|v| self.check(v, is_visible, NOT_VISIBLE))
            .transpose()
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
        if credential.len() > self.max_len {
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
