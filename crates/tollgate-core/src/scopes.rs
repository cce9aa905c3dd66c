//! [`Scopes`], the set of permissions a credential grants, and [`ScopePolicy`], how a held
//! scope is matched against a needed one.

use std::fmt;
use std::sync::Arc;

use crate::AuthError;

/// The scopes (permissions, roles) a credential grants: an immutable, sorted set with
/// membership tests in `O(log n)` and clones that only bump a reference count.
///
/// ```
/// use tollgate_core::Scopes;
///
/// let scopes = Scopes::from_space_separated("orders:read  orders:write\tadmin");
/// assert!(scopes.contains("orders:write"));
/// assert!(!scopes.contains("orders"));
/// assert_eq!(scopes.len(), 3);
/// assert_eq!(scopes.to_string(), "admin orders:read orders:write");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Scopes(Arc<[Box<str>]>);

impl Scopes {
    /// No scopes.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses an RFC 6749 §3.3 scope string: tokens separated by any run of ASCII whitespace.
    pub fn from_space_separated(s: &str) -> Self {
        s.split_ascii_whitespace().collect()
    }

    /// Whether `scope` is in the set, compared exactly (byte for byte).
    pub fn contains(&self, scope: &str) -> bool {
        self.0.binary_search_by(|s| (**s).cmp(scope)).is_ok()
    }

    /// Whether `prefix` followed by `suffix` is in the set, without building that string.
    fn contains_joined(&self, prefix: &str, suffix: &str) -> bool {
        let key = || prefix.bytes().chain(suffix.bytes());
        self.0.binary_search_by(|s| s.bytes().cmp(key())).is_ok()
    }

    /// How many scopes there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes in sorted order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.iter().map(|s| &**s)
    }
}

impl<S: AsRef<str>> FromIterator<S> for Scopes {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut v: Vec<Box<str>> = iter
            .into_iter()
            .filter(|s| !s.as_ref().is_empty())
            .map(|s| Box::from(s.as_ref()))
            .collect();
        v.sort_unstable();
        v.dedup();
        Scopes(v.into())
    }
}

impl<const N: usize> From<[&str; N]> for Scopes {
    fn from(scopes: [&str; N]) -> Self {
        scopes.into_iter().collect()
    }
}

impl fmt::Display for Scopes {
    /// Space-separated, as in a `scope` claim or challenge parameter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl serde::Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// Whether all of the needed scopes are required, or any one of them suffices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeMatch {
    /// Every needed scope must be granted.
    All,
    /// One granted scope among the needed ones is enough.
    Any,
}

/// How a held scope is matched against a needed one. Set once on the
/// [`AuthLayer`](crate::AuthLayer) and honored by every scope check behind it.
///
/// The default is [`ScopePolicy::exact`]: a scope grants only itself.
///
/// ```
/// use tollgate_core::{ScopePolicy, Scopes};
///
/// let held = Scopes::from(["orders:*", "billing"]);
///
/// let exact = ScopePolicy::exact();
/// assert!(!exact.grants(&held, "orders:read"));
///
/// // `orders:*` grants everything below `orders:`.
/// let wildcard = ScopePolicy::hierarchical(':');
/// assert!(wildcard.grants(&held, "orders:read"));
/// assert!(wildcard.grants(&held, "orders:read:own"));
/// assert!(!wildcard.grants(&held, "billing:read"));
///
/// // Opt in to a bare parent granting its children too.
/// let parents = ScopePolicy::hierarchical(':').parent_grants_children(true);
/// assert!(parents.grants(&held, "billing:read"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScopePolicy {
    hierarchy: Option<Hierarchy>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Hierarchy {
    separator: char,
    /// The separator followed by `*`, built once.
    wildcard: Box<str>,
    parent_grants_children: bool,
}

impl ScopePolicy {
    /// A scope grants only itself, compared byte for byte (the default).
    pub fn exact() -> Self {
        Self::default()
    }

    /// Scopes form a tree split by `separator`: a held `a:*` grants `a:b` and `a:b:c`.
    /// A bare `*` grants nothing special. Parents without the wildcard grant their children
    /// only with [`parent_grants_children`](Self::parent_grants_children).
    pub fn hierarchical(separator: char) -> Self {
        ScopePolicy {
            hierarchy: Some(Hierarchy {
                separator,
                wildcard: format!("{separator}*").into(),
                parent_grants_children: false,
            }),
        }
    }

    /// With a hierarchical policy, whether a held `a` grants `a:b` (default: `false`).
    /// Has no effect on the exact policy.
    pub fn parent_grants_children(mut self, yes: bool) -> Self {
        if let Some(h) = &mut self.hierarchy {
            h.parent_grants_children = yes;
        }
        self
    }

    /// Whether `held` grants `needed` under this policy.
    pub fn grants(&self, held: &Scopes, needed: &str) -> bool {
        if held.contains(needed) {
            return true;
        }
        let Some(h) = &self.hierarchy else {
            return false;
        };
        needed
            .match_indices(h.separator)
            .map(|(i, _)| &needed[..i])
            .filter(|parent| !parent.is_empty())
            .any(|parent| {
                held.contains_joined(parent, &h.wildcard)
                    || (h.parent_grants_children && held.contains(parent))
            })
    }

    /// Checks `needed` against `held`; on failure the error names the needed scopes, for the
    /// `scope="…"` parameter of the challenge.
    pub fn check(&self, held: &Scopes, needed: &Scopes, mode: ScopeMatch) -> Result<(), AuthError> {
        let ok = match mode {
            ScopeMatch::All => needed.iter().all(|s| self.grants(held, s)),
            ScopeMatch::Any => needed.is_empty() || needed.iter().any(|s| self.grants(held, s)),
        };
        if ok {
            Ok(())
        } else {
            Err(AuthError::insufficient_scope(needed.clone()))
        }
    }
}
