-- Workspaces: the top isolation unit, one platform operator (DESIGN.md §2). Every other table will
-- lead with a workspace id.
--
-- SQLite has no timestamp type: created_at holds an RFC 3339 UTC instant with exactly six fractional
-- digits (microseconds, PostgreSQL's precision), so text order is time order. STRICT makes SQLite
-- reject values of the wrong type instead of storing them anyway.
CREATE TABLE workspaces (
    id         TEXT NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
) STRICT;
