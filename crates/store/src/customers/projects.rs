//! Projects: the nodes of a customer's cost-center tree.

use jiff::Timestamp;

use super::rows::ProjectRow;
use super::{LoadCustomerError, Project, StoreCustomerError, PROJECTS_PER_CUSTOMER_MAX};
use crate::sql::{to_micros, with_pool};
use crate::store::Store;
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
        const SQL: &str = "INSERT INTO projects \
                           (workspace_id, id, customer_id, parent_id, name, created_at) \
                           VALUES ($1, $2, $3, $4, $5, $6)";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(workspace_id.as_str())
            .bind(&project.id)
            .bind(&project.customer_id)
            .bind(&project.parent_id)
            .bind(&project.name)
            .bind(to_micros(now))
            .execute(pool)
            .await
            .map(drop))
        .map_err(StoreCustomerError::from_sqlx)
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
        const SQL: &str = "SELECT id, customer_id, parent_id, name FROM projects \
                           WHERE workspace_id = $1 AND id = $2";
        let row: Option<ProjectRow> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace_id.as_str())
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(LoadCustomerError::Database)?;
        Ok(row.map(Project::from))
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
        const SQL: &str = "SELECT id, customer_id, parent_id, name FROM projects \
                           WHERE workspace_id = $1 AND customer_id = $2 ORDER BY id LIMIT $3";
        let rows: Vec<ProjectRow> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace_id.as_str())
            .bind(customer_id)
            .bind(i64::from(PROJECTS_PER_CUSTOMER_MAX))
            .fetch_all(pool)
            .await)
        .map_err(LoadCustomerError::Database)?;
        Ok(rows.into_iter().map(Project::from).collect())
    }
}
