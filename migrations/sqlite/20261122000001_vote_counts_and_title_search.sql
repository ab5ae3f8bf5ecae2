-- Lists at scale: a post's vote count kept with the post, and an index for title search.

-- The number of votes on the post. Triggers keep it in the same transaction as every vote
-- added or taken back, including votes deleted by a cascade (a voter's account deleted), so
-- that reading a post never counts its votes.
ALTER TABLE posts ADD COLUMN votes INTEGER NOT NULL DEFAULT 0 CHECK (votes >= 0);
UPDATE posts SET votes = (SELECT COUNT(*) FROM votes v WHERE v.post_id = posts.id);

CREATE TRIGGER votes_count_insert AFTER INSERT ON votes BEGIN
    UPDATE posts SET votes = votes + 1 WHERE id = new.post_id;
END;
CREATE TRIGGER votes_count_delete AFTER DELETE ON votes BEGIN
    UPDATE posts SET votes = votes - 1 WHERE id = old.post_id;
END;

-- Title search: every three-character substring of the lower-cased titles, so that a search of
-- three characters or more finds its posts without reading every title. An FTS5 table with the
-- trigram tokenizer, over posts' own rows (external content); case-sensitive, because the keys
-- are lower-cased already, so it matches exactly what a substring search of the key would.
CREATE VIRTUAL TABLE posts_title_search USING fts5(
    title_key,
    content = 'posts',
    content_rowid = 'id',
    tokenize = 'trigram case_sensitive 1'
);
INSERT INTO posts_title_search (posts_title_search) VALUES ('rebuild');

CREATE TRIGGER posts_title_search_insert AFTER INSERT ON posts BEGIN
    INSERT INTO posts_title_search (rowid, title_key) VALUES (new.id, new.title_key);
END;
CREATE TRIGGER posts_title_search_delete AFTER DELETE ON posts BEGIN
    INSERT INTO posts_title_search (posts_title_search, rowid, title_key)
    VALUES ('delete', old.id, old.title_key);
END;
CREATE TRIGGER posts_title_search_update AFTER UPDATE OF title_key ON posts BEGIN
    INSERT INTO posts_title_search (posts_title_search, rowid, title_key)
    VALUES ('delete', old.id, old.title_key);
    INSERT INTO posts_title_search (rowid, title_key) VALUES (new.id, new.title_key);
END;
