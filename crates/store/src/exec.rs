//! Preparing and executing statements: retries with backoff for transient failures, and
//! streamed reads.
//!
//! The driver already fails over between nodes; what it does not do is wait out a cluster that
//! is briefly unavailable or overloaded. Idempotent statements are retried here with
//! exponential backoff and jitter (100 ms doubling to 5 s), up to `[store] max_attempts`; a
//! caller that gets a transient error after that (the sink) keeps the record and pauses.
//!
//! Every attempt holds one of the handle's `[store] max_concurrency` permits while it is on the
//! wire (not while it backs off): however many batches the callers write at once, the cluster
//! sees at most that many of this handle's statements. Paged reads are not counted.

use std::time::Duration;

use futures::{Stream, TryStreamExt};
use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::errors::ExecutionError;
use scylla::response::query_result::QueryResult;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::unprepared::Statement;

use crate::Store;
use crate::error::{Result, StoreError, is_transient};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long one attempt of a schema change may take (see [`Store::run_ddl`]).
const DDL_TIMEOUT: Duration = Duration::from_secs(60);

impl Store {
    /// Runs a prepared statement, retrying transient failures when it is idempotent.
    pub(crate) async fn execute(
        &self,
        context: &'static str,
        statement: &PreparedStatement,
        values: &impl SerializeRow,
    ) -> Result<QueryResult> {
        self.retrying(context, statement.get_is_idempotent(), || {
            self.session.execute_unpaged(statement, values)
        })
        .await
    }

    /// Runs `attempt` holding a permit, again with backoff while it fails transiently and
    /// `idempotent` allows.
    pub(crate) async fn retrying<F, Fut>(
        &self,
        context: &'static str,
        idempotent: bool,
        attempt_once: F,
    ) -> Result<QueryResult>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = std::result::Result<QueryResult, ExecutionError>>,
    {
        let mut attempt = 1;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let attempted = {
                // Never closed: `Store` owns it and closes nothing.
                let _permit = self.in_flight.acquire().await;
                attempt_once().await
            };
            match attempted {
                Ok(result) => return Ok(result),
                Err(e) if attempt < self.max_attempts && idempotent && is_transient(&e) => {
                    tracing::warn!(context, attempt, error = %e, "transient CQL failure, retrying");
                    tokio::time::sleep(backoff + jitter(backoff)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
                Err(source) => {
                    return Err(StoreError::Cql {
                        context,
                        error: Box::new(source),
                    });
                }
            }
        }
    }

    /// Streams the rows of a (paged) read.
    pub(crate) async fn rows<R>(
        &self,
        context: &'static str,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<std::pin::Pin<Box<dyn Stream<Item = Result<R>> + Send>>>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm> + Send + 'static,
    {
        let pager = self
            .session
            .execute_iter(statement.clone(), values)
            .await
            .map_err(StoreError::pager(context))?;
        let rows = pager
            .rows_stream::<R>()
            .map_err(|e| StoreError::read(context, e))?;
        Ok(Box::pin(
            rows.map_err(move |e| StoreError::read(context, e)),
        ))
    }

    /// The first row of a single-partition read, if any.
    pub(crate) async fn first_row<R>(
        &self,
        context: &'static str,
        statement: &PreparedStatement,
        values: &impl SerializeRow,
    ) -> Result<Option<R>>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        first_of(context, self.execute(context, statement, values).await?)
    }

    /// The first row of a one-off, unprepared read (the schema tables, `store_meta`), if any.
    pub(crate) async fn first_row_unprepared<R>(
        &self,
        context: &'static str,
        cql: impl Into<Statement>,
        values: impl SerializeRow,
    ) -> Result<Option<R>>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let result = self
            .session
            .query_unpaged(cql, values)
            .await
            .map_err(StoreError::cql(context))?;
        first_of(context, result)
    }

    /// A schema change. It waits for the cluster to agree on the new schema, which takes long
    /// on a busy or large cluster (10 s timed out on a loaded two-core test machine), so each
    /// attempt gets [`DDL_TIMEOUT`]; and since every schema change auditflow makes can be run
    /// again (`IF NOT EXISTS`, options set to values, columns added after a check that
    /// settles a failed `ADD`), one whose outcome a timeout left unknown is run again.
    pub(crate) async fn run_ddl(&self, ddl: &str) -> Result<()> {
        let mut statement = Statement::new(ddl);
        statement.set_request_timeout(Some(DDL_TIMEOUT));
        let mut attempt = 1;
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.session.query_unpaged(statement.clone(), ()).await {
                Ok(_) => return Ok(()),
                Err(e) if attempt < self.max_attempts && is_transient(&e) => {
                    tracing::warn!(attempt, error = %e, "schema change timed out or failed, running it again");
                    tokio::time::sleep(backoff + jitter(backoff)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
                Err(e) => return Err(StoreError::cql("schema change")(e)),
            }
        }
    }
}

/// Up to a quarter of the backoff, so retrying clients do not move in lockstep.
fn jitter(backoff: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    backoff / 4 * u32::from(byte[0]) / 255
}

/// Prepares `cql` once, marked idempotent or not (only idempotent statements are retried).
pub(crate) async fn prepare(
    session: &Session,
    cql: String,
    idempotent: bool,
) -> Result<PreparedStatement> {
    let mut statement = session.prepare(cql).await.map_err(|e| StoreError::Read {
        context: "prepare statement",
        detail: e.to_string(),
    })?;
    statement.set_is_idempotent(idempotent);
    Ok(statement)
}

/// The first row of a read's result, if any.
fn first_of<R>(context: &'static str, result: QueryResult) -> Result<Option<R>>
where
    R: for<'f, 'm> DeserializeRow<'f, 'm>,
{
    result
        .into_rows_result()
        .map_err(|e| StoreError::read(context, e))?
        .maybe_first_row::<R>()
        .map_err(|e| StoreError::read(context, e))
}
