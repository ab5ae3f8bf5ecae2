-- Posts and the votes on them.

CREATE TABLE posts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Deleting a user deletes their posts.
    owner_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- length() counts characters for TEXT, as the contract does.
    title      TEXT    NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
    -- The lower-cased title, for case-insensitive search. Lower-cased by the application, so that
    -- SQLite (whose lower() folds ASCII only) and PostgreSQL find the same posts.
    title_key  TEXT    NOT NULL,
    content    TEXT    NOT NULL CHECK (length(content) BETWEEN 1 AND 10000),
    published  INTEGER NOT NULL DEFAULT 1 CHECK (published IN (0, 1)),
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
) STRICT;

-- The list: newest first.
CREATE INDEX posts_created_at_idx ON posts (created_at DESC, id DESC);
-- A user's own posts (their unpublished ones are listed for them), and the cascade on delete.
CREATE INDEX posts_owner_id_idx ON posts (owner_id);

CREATE TABLE votes (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    post_id    INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    created_at TEXT    NOT NULL,
    -- One vote per user and post; concurrent duplicates fail here, not in application code.
    PRIMARY KEY (user_id, post_id)
) STRICT;

-- Counting a post's votes, and the cascade when a post is deleted.
CREATE INDEX votes_post_id_idx ON votes (post_id);
