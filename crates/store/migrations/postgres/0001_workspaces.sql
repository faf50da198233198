-- Workspaces: the top isolation unit, one platform operator (DESIGN.md §2). Every other table will
-- lead with a workspace id.
--
-- Constraints are named so that the store can map a violation to a typed error by name.
CREATE TABLE workspaces (
    id         TEXT        NOT NULL CONSTRAINT workspaces_pkey PRIMARY KEY,
    name       TEXT        NOT NULL CONSTRAINT workspaces_name_key UNIQUE,
    created_at TIMESTAMPTZ NOT NULL
);
