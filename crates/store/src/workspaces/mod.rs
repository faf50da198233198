//! Workspaces: the top isolation unit, one platform operator (DESIGN.md §2).
//!
//! [`Store::insert_workspace`] and [`Store::workspace`], one query text for both backends
//! ([`crate::sql`]); this module turns rows into [`Workspace`]s and database errors into typed
//! ones.

use std::fmt;

use jiff::Timestamp;

use crate::sql::{timestamp_from_micros, to_micros, violated_unique_key, with_pool, UniqueKeyName};
use crate::store::Store;

/// The longest workspace id accepted, prefix included.
const WORKSPACE_ID_LENGTH_MAX: usize = 64;
/// The longest workspace name accepted, in characters.
const WORKSPACE_NAME_LENGTH_MAX: usize = 100;

/// A workspace's id: `ws_` followed by ASCII letters and digits, at most 64 characters in all.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspaceId(String);

impl WorkspaceId {
    const PREFIX: &'static str = "ws_";

    /// Checks `id`.
    ///
    /// # Errors
    ///
    /// [`ParseWorkspaceIdError`] when the prefix, the length or a character is wrong.
    pub fn parse(id: &str) -> Result<Self, ParseWorkspaceIdError> {
        let Some(suffix) = id.strip_prefix(Self::PREFIX) else {
            return Err(ParseWorkspaceIdError::MissingPrefix);
        };
        if suffix.is_empty() || id.len() > WORKSPACE_ID_LENGTH_MAX {
            return Err(ParseWorkspaceIdError::Length { length: id.len() });
        }
        if let Some(character) = suffix.chars().find(|c| !c.is_ascii_alphanumeric()) {
            return Err(ParseWorkspaceIdError::Character { character });
        }
        Ok(Self(id.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkspaceId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// Why a workspace id was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseWorkspaceIdError {
    #[error("a workspace id starts with \"ws_\"")]
    MissingPrefix,
    #[error("a workspace id has 4 to 64 characters, not {length}")]
    Length { length: usize },
    #[error("a workspace id has only ASCII letters and digits after \"ws_\", not {character:?}")]
    Character { character: char },
}

/// A workspace's display name: unique within a deployment, 1 to 100 characters, no control
/// characters, no surrounding whitespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WorkspaceName(String);

impl WorkspaceName {
    /// Checks `name`.
    ///
    /// # Errors
    ///
    /// [`ParseWorkspaceNameError`] when the name is empty, too long, padded or has a control
    /// character.
    pub fn parse(name: &str) -> Result<Self, ParseWorkspaceNameError> {
        let length = name.chars().count();
        if length == 0 || length > WORKSPACE_NAME_LENGTH_MAX {
            return Err(ParseWorkspaceNameError::Length { length });
        }
        if name.trim() != name {
            return Err(ParseWorkspaceNameError::SurroundingWhitespace);
        }
        if name.chars().any(char::is_control) {
            return Err(ParseWorkspaceNameError::ControlCharacter);
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkspaceName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// Why a workspace name was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseWorkspaceNameError {
    #[error("a workspace name has 1 to 100 characters, not {length}")]
    Length { length: usize },
    #[error("a workspace name does not start or end with whitespace")]
    SurroundingWhitespace,
    #[error("a workspace name has no control characters")]
    ControlCharacter,
}

/// A stored workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: WorkspaceName,
    /// Kept to the microsecond (PostgreSQL's precision, used on both backends); finer digits are
    /// dropped when stored.
    pub created_at: Timestamp,
}

/// A workspace as stored: id, name, `created_at` in microseconds.
pub(crate) type WorkspaceRow = (String, String, i64);

/// Checks a loaded row as strictly as input: the database is not trusted to hold only what this
/// code wrote.
pub(crate) fn workspace_from_row(
    (id, name, created_at): WorkspaceRow,
) -> Result<Workspace, CorruptWorkspaceRowError> {
    Ok(Workspace {
        id: WorkspaceId::parse(&id)?,
        name: WorkspaceName::parse(&name)?,
        created_at: timestamp_from_micros(created_at)?,
    })
}

/// Which unique key an insert collided with.
#[derive(Clone, Copy)]
enum UniqueKey {
    Id,
    Name,
}

/// The unique keys of `workspaces`, as each backend names them (migrations/*/0001_workspaces.sql).
const UNIQUE_KEYS: [(UniqueKeyName, UniqueKey); 2] = [
    (
        UniqueKeyName {
            constraint: "workspaces_pkey",
            columns: "workspaces.id",
        },
        UniqueKey::Id,
    ),
    (
        UniqueKeyName {
            constraint: "workspaces_name_key",
            columns: "workspaces.name",
        },
        UniqueKey::Name,
    ),
];

/// Which unique column a workspace is looked up by.
#[derive(Clone, Copy)]
pub(crate) enum WorkspaceKey {
    Id,
    Name,
}

impl Store {
    /// Stores a new workspace.
    ///
    /// # Errors
    ///
    /// [`InsertWorkspaceError::IdTaken`] or [`InsertWorkspaceError::NameTaken`] when another
    /// workspace has the same id or name; [`InsertWorkspaceError::Database`] otherwise.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace.id))]
    pub async fn insert_workspace(
        &self,
        workspace: &Workspace,
    ) -> Result<(), InsertWorkspaceError> {
        const SQL: &str = "INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)";
        let result = with_pool!(self, pool => sqlx::query(SQL)
            .bind(workspace.id.as_str())
            .bind(workspace.name.as_str())
            .bind(to_micros(workspace.created_at))
            .execute(pool)
            .await
            .map(drop));
        result.map_err(|error| match violated_unique_key(&error, &UNIQUE_KEYS) {
            Some(UniqueKey::Id) => InsertWorkspaceError::IdTaken {
                id: workspace.id.clone(),
            },
            Some(UniqueKey::Name) => InsertWorkspaceError::NameTaken {
                name: workspace.name.clone(),
            },
            None => InsertWorkspaceError::Database(error),
        })
    }

    /// Loads the workspace `id`, or `None` when there is none.
    ///
    /// # Errors
    ///
    /// [`LoadWorkspaceError`] when the query fails or the stored row is not a valid workspace.
    #[tracing::instrument(skip_all, fields(workspace_id = %id))]
    pub async fn workspace(
        &self,
        id: &WorkspaceId,
    ) -> Result<Option<Workspace>, LoadWorkspaceError> {
        let row = self
            .workspace_row(WorkspaceKey::Id, id.as_str())
            .await
            .map_err(LoadWorkspaceError::Database)?;
        let workspace = row.map(workspace_from_row).transpose()?;
        if let Some(workspace) = &workspace {
            assert_eq!(&workspace.id, id, "the query returned another workspace");
        }
        Ok(workspace)
    }

    /// The row of the workspace whose `key` column is `value`, or `None`.
    pub(crate) async fn workspace_row(
        &self,
        key: WorkspaceKey,
        value: &str,
    ) -> Result<Option<WorkspaceRow>, sqlx::Error> {
        let sql = match key {
            WorkspaceKey::Id => "SELECT id, name, created_at FROM workspaces WHERE id = $1",
            WorkspaceKey::Name => "SELECT id, name, created_at FROM workspaces WHERE name = $1",
        };
        with_pool!(self, pool => sqlx::query_as(sql).bind(value).fetch_optional(pool).await)
    }
}

/// Why [`Store::insert_workspace`] failed.
#[derive(Debug, thiserror::Error)]
pub enum InsertWorkspaceError {
    #[error("a workspace with the id {id} already exists")]
    IdTaken { id: WorkspaceId },
    #[error("a workspace named {name:?} already exists")]
    NameTaken { name: WorkspaceName },
    #[error("could not store the workspace")]
    Database(#[source] sqlx::Error),
}

/// Why [`Store::workspace`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadWorkspaceError {
    #[error("could not load the workspace")]
    Database(#[source] sqlx::Error),
    #[error("the stored workspace is invalid")]
    CorruptRow(#[from] CorruptWorkspaceRowError),
}

/// Which column of a stored workspace failed its check.
#[derive(Debug, thiserror::Error)]
pub enum CorruptWorkspaceRowError {
    #[error("invalid id")]
    Id(#[from] ParseWorkspaceIdError),
    #[error("invalid name")]
    Name(#[from] ParseWorkspaceNameError),
    #[error("invalid created_at")]
    CreatedAt(#[from] jiff::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_id_needs_its_prefix_and_plain_characters() {
        assert!(WorkspaceId::parse("ws_01HZX3").is_ok());
        assert_eq!(
            WorkspaceId::parse("01HZX3"),
            Err(ParseWorkspaceIdError::MissingPrefix)
        );
        assert_eq!(
            WorkspaceId::parse("ws_"),
            Err(ParseWorkspaceIdError::Length { length: 3 })
        );
        assert_eq!(
            WorkspaceId::parse("ws_a-b"),
            Err(ParseWorkspaceIdError::Character { character: '-' })
        );
        let longest = format!("ws_{}", "a".repeat(WORKSPACE_ID_LENGTH_MAX - 3));
        assert!(WorkspaceId::parse(&longest).is_ok());
        assert!(WorkspaceId::parse(&format!("{longest}a")).is_err());
    }

    #[test]
    fn a_workspace_name_is_trimmed_printable_and_bounded() {
        assert!(WorkspaceName::parse("Acme Cloud").is_ok());
        assert_eq!(
            WorkspaceName::parse(""),
            Err(ParseWorkspaceNameError::Length { length: 0 })
        );
        assert_eq!(
            WorkspaceName::parse(" Acme"),
            Err(ParseWorkspaceNameError::SurroundingWhitespace)
        );
        assert_eq!(
            WorkspaceName::parse("Ac\u{7}me"),
            Err(ParseWorkspaceNameError::ControlCharacter)
        );
        assert!(WorkspaceName::parse(&"é".repeat(WORKSPACE_NAME_LENGTH_MAX)).is_ok());
    }
}
