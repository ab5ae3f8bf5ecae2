//! Keyset pages: which page of a newest-first list to read (security events, sessions, personal
//! tokens), named by the last item of the previous page rather than by an offset.

use crate::events::EventLimit;

/// Which page of a keyset-paged list to read: the items listed after item `before` when given
/// (the last of the previous page), at most `limit`. An id that names none of the listed items
/// gives an empty page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeysetPage<Id> {
    /// Only items listed after this one (the last of the previous page).
    pub before: Option<Id>,
    pub limit: EventLimit,
}

/// An id that keys a list with a default page size of its own.
pub trait PageKey {
    /// How many items the first page holds when the caller does not say (within 1..=200).
    const DEFAULT_LIMIT: i64;
}

impl<Id: PageKey> KeysetPage<Id> {
    /// The default page size of this list.
    pub const DEFAULT_LIMIT: i64 = Id::DEFAULT_LIMIT;

    /// The first page, of the default size.
    pub fn first() -> Self {
        Self {
            before: None,
            limit: EventLimit::new(Self::DEFAULT_LIMIT).expect("within 1..=200"),
        }
    }
}
