//! Projects: the nodes of a customer's cost-center tree.

use jiff::Timestamp;

use super::{
    postgres, sqlite, LoadCustomerError, Project, StoreCustomerError, PROJECTS_PER_CUSTOMER_MAX,
};
use crate::store::{Backend, Store};
use crate::workspaces::format_timestamp;
use crate::WorkspaceId;

impl Store {
    /// Stores a new project of `workspace_id`.
    ///
    /// # Errors
    ///
    /// [`StoreCustomerError::UnknownParent`] when the customer or the parent project is not the
    /// workspace's (a parent must belong to the same customer), [`StoreCustomerError::Database`]
    /// otherwise.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, project_id = %project.id))]
    pub async fn insert_project(
        &self,
        workspace_id: &WorkspaceId,
        project: &Project,
        now: Timestamp,
    ) -> Result<(), StoreCustomerError> {
        let now = format_timestamp(now);
        let workspace_id = workspace_id.as_str();
        let result = match &self.backend {
            Backend::Sqlite(pool) => sqlite::insert_project(pool, workspace_id, project, &now)
                .await
                .map_err(|error| (sqlite::violation(&error), error)),
            Backend::Postgres(pool) => postgres::insert_project(pool, workspace_id, project, &now)
                .await
                .map_err(|error| (postgres::violation(&error), error)),
        };
        result.map_err(|(violation, error)| StoreCustomerError::from_violation(violation, error))
    }

    /// The project `id` of `workspace_id`, or `None`.
    ///
    /// # Errors
    ///
    /// [`LoadCustomerError::Database`] when the query fails.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, project_id = %id))]
    pub async fn project(
        &self,
        workspace_id: &WorkspaceId,
        id: &str,
    ) -> Result<Option<Project>, LoadCustomerError> {
        match &self.backend {
            Backend::Sqlite(pool) => sqlite::project(pool, workspace_id.as_str(), id).await,
            Backend::Postgres(pool) => postgres::project(pool, workspace_id.as_str(), id).await,
        }
        .map(|row| row.map(Project::from))
        .map_err(LoadCustomerError::Database)
    }

    /// Every project of the customer `customer_id`, in id order (at most
    /// [`PROJECTS_PER_CUSTOMER_MAX`]).
    ///
    /// # Errors
    ///
    /// [`LoadCustomerError::Database`] when the query fails.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, customer_id))]
    pub async fn projects(
        &self,
        workspace_id: &WorkspaceId,
        customer_id: &str,
    ) -> Result<Vec<Project>, LoadCustomerError> {
        let limit = i64::from(PROJECTS_PER_CUSTOMER_MAX);
        let workspace_id = workspace_id.as_str();
        match &self.backend {
            Backend::Sqlite(pool) => sqlite::projects(pool, workspace_id, customer_id, limit).await,
            Backend::Postgres(pool) => {
                postgres::projects(pool, workspace_id, customer_id, limit).await
            }
        }
        .map(|rows| rows.into_iter().map(Project::from).collect())
        .map_err(LoadCustomerError::Database)
    }
}
