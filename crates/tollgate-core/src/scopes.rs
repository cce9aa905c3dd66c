//! [`Scopes`], the set of permissions a credential grants, and [`ScopePolicy`], how a held
//! scope is matched against a needed one.

use std::fmt;
use std::hash::{DefaultHasher, Hasher};
use std::sync::Arc;

use crate::AuthError;

/// The scopes (permissions, roles) a credential grants: an immutable set with membership
/// tests in `O(log n)` integer comparisons plus one string comparison, and clones that only
/// bump a reference count.
///
/// Each scope is stored with a hash computed once, when the set is built; a check against a
/// [`Scopes`] of needed scopes (as `RequireScopes<S>` does) reuses their hashes too, so the hot
/// path hashes nothing. Printed (`Display`, `Debug`) in sorted order.
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
pub struct Scopes(Arc<[Scope]>);

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Scope {
    hash: u64,
    name: Box<str>,
}

/// A hash of the concatenation of `parts` (std's SipHash with its fixed keys: stable within a
/// process, which is all a set built and queried in one process needs).
fn hash_of(parts: &[&str]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for part in parts {
        hasher.write(part.as_bytes());
    }
    hasher.finish()
}

impl Scopes {
    /// No scopes.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses an RFC 6749 §3.3 scope string: tokens separated by any run of ASCII whitespace.
    pub fn from_space_separated(s: &str) -> Self {
        s.split_ascii_whitespace().collect()
    }

    /// Whether some scope with `hash` satisfies `is`.
    fn find(&self, hash: u64, is: impl Fn(&str) -> bool) -> bool {
        let start = self.0.partition_point(|s| s.hash < hash);
        self.0[start..]
            .iter()
            .take_while(|s| s.hash == hash)
            .any(|s| is(&s.name))
    }

    /// Whether `scope` is in the set, compared exactly (byte for byte).
    pub fn contains(&self, scope: &str) -> bool {
        self.find(hash_of(&[scope]), |s| s == scope)
    }

    /// Whether `prefix` followed by `suffix` is in the set, without building that string.
    fn contains_joined(&self, prefix: &str, suffix: &str) -> bool {
        self.find(hash_of(&[prefix, suffix]), |s| {
            s.len() == prefix.len() + suffix.len() && s.starts_with(prefix) && s.ends_with(suffix)
        })
    }

    /// How many scopes there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes, in no particular order (`to_string()` sorts them).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.iter().map(|s| &*s.name)
    }

    fn sorted(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.iter().collect();
        names.sort_unstable();
        names
    }
}

impl<S: AsRef<str>> FromIterator<S> for Scopes {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut v: Vec<Scope> = iter
            .into_iter()
            .filter(|s| !s.as_ref().is_empty())
            .map(|s| Scope {
                hash: hash_of(&[s.as_ref()]),
                name: Box::from(s.as_ref()),
            })
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
        for (i, s) in self.sorted().into_iter().enumerate() {
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
        f.debug_set().entries(self.sorted()).finish()
    }
}

impl serde::Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.sorted())
    }
}

impl<'de> serde::Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(
            Vec::<std::borrow::Cow<'de, str>>::deserialize(deserializer)?
                .into_iter()
                .collect(),
        )
    }
}

/// A set of scopes named by a type: what `RequireScopes<S>` (the axum extractor) and
/// [`RequireScopesLayer`](crate::RequireScopesLayer) check. Declare one with [`scopes!`](crate::scopes!),
/// which also makes the type convertible into [`Scopes`].
pub trait ScopeSet: Send + Sync + 'static {
    /// The scopes, built once.
    fn scopes() -> &'static Scopes;
}

/// Declares [`ScopeSet`] types, one per line: `Name = "scope", "scope", ...;`. Each works as
/// the parameter of the `RequireScopes<S>` and `RequireAnyScope<S>` extractors, and as the
/// argument of [`RequireScopesLayer::all`](crate::RequireScopesLayer::all) /
/// [`any`](crate::RequireScopesLayer::any).
///
/// ```
/// use tollgate_core::{RequireScopesLayer, ScopeSet, Scopes, scopes};
///
/// scopes! {
///     pub OrdersWrite = "orders:write";
///     pub(crate) Reporting = "reports:read", "reports:export";
/// }
/// assert!(Reporting::scopes().contains("reports:export"));
/// assert_eq!(Scopes::from(OrdersWrite).to_string(), "orders:write");
/// let layer = RequireScopesLayer::all(Reporting);
/// # let _ = layer;
/// ```
#[macro_export]
macro_rules! scopes {
    ($($(#[$meta:meta])* $vis:vis $name:ident = $($scope:literal),+ $(,)?;)+) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default)]
        $vis struct $name;

        impl $crate::ScopeSet for $name {
            fn scopes() -> &'static $crate::Scopes {
                static SCOPES: ::std::sync::LazyLock<$crate::Scopes> =
                    ::std::sync::LazyLock::new(|| $crate::Scopes::from([$($scope),+]));
                &SCOPES
            }
        }

        impl ::core::convert::From<$name> for $crate::Scopes {
            fn from(_: $name) -> $crate::Scopes {
                <$name as $crate::ScopeSet>::scopes().clone()
            }
        }
    )+};
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
        self.grants_hashed(held, needed, hash_of(&[needed]))
    }

    fn grants_hashed(&self, held: &Scopes, needed: &str, hash: u64) -> bool {
        if held.find(hash, |s| s == needed) {
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
        let grants = |s: &Scope| self.grants_hashed(held, &s.name, s.hash);
        let ok = match mode {
            ScopeMatch::All => needed.0.iter().all(grants),
            ScopeMatch::Any => needed.is_empty() || needed.0.iter().any(grants),
        };
        if ok {
            Ok(())
        } else {
            Err(AuthError::insufficient_scope(needed.clone()))
        }
    }
}
