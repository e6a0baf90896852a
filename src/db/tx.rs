//! The transaction helper for work whose future need not be `Send` (HTTP handlers): it drives
//! the connection's transaction manager directly, as `AsyncConnection::transaction` does, but
//! takes any async closure. A future dropped half-way leaves the transaction open; the pool
//! then discards that connection instead of reusing it.

use diesel::result::Error;
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, TransactionManager};

/// Runs `work` in a transaction: committed when it returns `Ok`, rolled back when it returns
/// `Err` (the work's error wins over a failed rollback, unless the connection is left broken).
pub async fn run<R, E>(
    conn: &mut AsyncPgConnection,
    work: impl AsyncFnOnce(&mut AsyncPgConnection) -> Result<R, E>,
) -> Result<R, E>
where
    E: From<Error>,
{
    AnsiTransactionManager::begin_transaction(conn).await?;
    match work(&mut *conn).await {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(conn).await?;
            Ok(value)
        }
        Err(error) => match AnsiTransactionManager::rollback_transaction(conn).await {
            Ok(()) | Err(Error::BrokenTransactionManager) => Err(error),
            Err(rollback) => Err(rollback.into()),
        },
    }
}
