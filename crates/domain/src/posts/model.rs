//! Posts, votes on them, and the values they are made of.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::{
    accounts::{User, UserId},
    text::{self, ForbiddenCharacter, TextKind},
};

/// A post's id: a positive 64-bit integer assigned by the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PostId(i64);

impl PostId {
    pub const fn new(id: i64) -> Self {
        Self(id)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for PostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

pub const TITLE_MAX_CHARS: usize = 300;
pub const CONTENT_MAX_CHARS: usize = 10_000;

/// The longest search, in characters.
pub const SEARCH_MAX_CHARS: usize = 300;

/// Why a title, a content or a search was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters long")]
    TooLong { max: usize },
    /// A character the text model refuses (see [`crate::text`]).
    #[error(transparent)]
    Forbidden(#[from] ForbiddenCharacter),
}

/// Checks a post's text: at least one character that is not white space, at most `max`
/// characters (Unicode scalar values, as the contract counts them, not bytes), and only
/// characters the text model accepts for `kind`.
pub(crate) fn check_text(raw: &str, max: usize, kind: TextKind) -> Result<(), TextError> {
    if raw.trim().is_empty() {
        Err(TextError::Empty)
    } else if raw.chars().count() > max {
        Err(TextError::TooLong { max })
    } else {
        Ok(text::check(raw, kind)?)
    }
}

/// What a list searches titles for: up to 300 characters of one line, matched as a
/// case-insensitive substring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerm(String);

impl SearchTerm {
    /// `None` for an empty search, which matches every post (as FastAPI's default `""` does).
    ///
    /// # Errors
    ///
    /// Over 300 characters, or a character the text model refuses in a line.
    pub fn new(raw: &str) -> Result<Option<Self>, TextError> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.chars().count() > SEARCH_MAX_CHARS {
            return Err(TextError::TooLong {
                max: SEARCH_MAX_CHARS,
            });
        }
        text::check(raw, TextKind::Line)?;
        Ok(Some(Self(raw.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A post's title: 1 to 300 characters, not only white space. Kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostTitle(String);

impl PostTitle {
    pub fn new(raw: String) -> Result<Self, TextError> {
        check_text(&raw, TITLE_MAX_CHARS, TextKind::Line)?;
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A post's content: 1 to 10 000 characters, not only white space. Kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostContent(String);

impl PostContent {
    pub fn new(raw: String) -> Result<Self, TextError> {
        check_text(&raw, CONTENT_MAX_CHARS, TextKind::Multiline)?;
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A post, with its owner and its current number of votes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    pub id: PostId,
    pub title: PostTitle,
    pub content: PostContent,
    /// Unpublished posts are seen by their owner only.
    pub published: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub owner: User,
    pub votes: u64,
}

impl Post {
    /// Everyone sees a published post; only its owner sees an unpublished one.
    pub fn is_visible_to(&self, viewer: UserId) -> bool {
        self.published || self.owner.id == viewer
    }

    pub fn is_owned_by(&self, user: UserId) -> bool {
        self.owner.id == user
    }
}

/// What a post says: what is written when it is created or replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostDraft {
    pub title: PostTitle,
    pub content: PostContent,
    pub published: bool,
}

pub const PAGE_MAX_LIMIT: u32 = 100;

/// One page of a list: at most `limit` (1 to 100) items after skipping `skip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    limit: u32,
    skip: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("limit must be between 1 and {PAGE_MAX_LIMIT}")]
pub struct PageError;

impl Page {
    pub fn new(limit: u32, skip: u64) -> Result<Self, PageError> {
        if (1..=PAGE_MAX_LIMIT).contains(&limit) {
            Ok(Self { limit, skip })
        } else {
            Err(PageError)
        }
    }

    pub fn limit(self) -> u32 {
        self.limit
    }

    pub fn skip(self) -> u64 {
        self.skip
    }
}

/// Which posts to list, for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostQuery {
    /// Sees every published post plus their own unpublished ones.
    pub viewer: UserId,
    /// Only posts whose title contains this, ignoring case.
    pub search: Option<SearchTerm>,
    pub page: Page,
}

/// One page of posts, newest first, and how many posts match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostList {
    pub posts: Vec<Post>,
    /// How many posts match, counted up to [`MAX_COUNTED_POSTS`].
    pub total: u64,
}

/// A list counts its matches up to this many: counting every match of a large table would
/// cost as much as reading it, on every page. `MAX_COUNTED_POSTS` means "at least that many".
pub const MAX_COUNTED_POSTS: u64 = 1000;

/// A vote's direction, as the API spells it: 1 adds the caller's vote, 0 takes it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteDirection {
    Add,
    Remove,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_one_to_three_hundred_characters_not_bytes() {
        assert_eq!(PostTitle::new(String::new()), Err(TextError::Empty));
        assert_eq!(PostTitle::new(" \n\t".into()), Err(TextError::Empty));
        assert!(PostTitle::new("é".repeat(300)).is_ok());
        assert_eq!(
            PostTitle::new("a".repeat(301)),
            Err(TextError::TooLong { max: 300 })
        );
    }

    #[test]
    fn content_is_one_to_ten_thousand_characters() {
        assert_eq!(PostContent::new(String::new()), Err(TextError::Empty));
        assert!(PostContent::new("x".repeat(10_000)).is_ok());
        assert_eq!(
            PostContent::new("x".repeat(10_001)),
            Err(TextError::TooLong { max: 10_000 })
        );
    }

    #[test]
    fn text_is_kept_as_written() {
        assert_eq!(PostTitle::new("  Hi  ".into()).unwrap().as_str(), "  Hi  ");
    }

    #[test]
    fn a_page_holds_one_to_a_hundred_items() {
        assert_eq!(Page::new(0, 0), Err(PageError));
        assert!(Page::new(1, 0).is_ok());
        assert!(Page::new(100, 5).is_ok());
        assert_eq!(Page::new(101, 0), Err(PageError));
    }
}
