-- Posts and the votes on them.

CREATE TABLE posts (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Deleting a user deletes their posts.
    owner_id   BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title      TEXT        NOT NULL CHECK (char_length(title) BETWEEN 1 AND 300),
    -- The lower-cased title, for case-insensitive search. Lower-cased by the application, so that
    -- SQLite (whose lower() folds ASCII only) and PostgreSQL find the same posts.
    title_key  TEXT        NOT NULL,
    content    TEXT        NOT NULL CHECK (char_length(content) BETWEEN 1 AND 10000),
    published  BOOLEAN     NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- The list: newest first.
CREATE INDEX posts_created_at_idx ON posts (created_at DESC, id DESC);
-- A user's own posts (their unpublished ones are listed for them), and the cascade on delete.
CREATE INDEX posts_owner_id_idx ON posts (owner_id);

CREATE TABLE votes (
    user_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    post_id    BIGINT      NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    -- One vote per user and post; concurrent duplicates fail here, not in application code.
    PRIMARY KEY (user_id, post_id)
);

-- Counting a post's votes, and the cascade when a post is deleted.
CREATE INDEX votes_post_id_idx ON votes (post_id);
