//! A small blocking client of ClickHouse's HTTP interface: statements in the
//! body, results as TabSeparated text, inserts as `RowBinary` (or
//! TabSeparated) rows.
//!
//! Both formats are understood by every ClickHouse since long before 18.16
//! (the CI server, which lacks `RowBinaryWithNamesAndTypes`) and need no
//! schema negotiation: the column list is in the `INSERT`, and the shipper
//! writes each value in its column's exact type.

use std::borrow::Cow;
use std::time::Duration;

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::tsv;

/// Longest answer read into memory (query results are groups, not raw rows).
const MAX_ANSWER_BYTES: u64 = 256 * 1024 * 1024;

/// A connection pool to one ClickHouse server and database.
#[derive(Clone)]
pub struct Client {
    endpoint: Endpoint,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl Client {
    /// A client with the given per-request timeout.
    pub fn new(endpoint: Endpoint, timeout: Duration) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(5))))
            .build()
            .into();
        Client { endpoint, agent }
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The database, quoted for SQL (`` `ai_usage` ``).
    pub fn db(&self) -> String {
        format!("`{}`", self.endpoint.database())
    }

    /// Runs a statement that returns nothing (DDL, `INSERT … SELECT`).
    pub fn execute(&self, sql: &str) -> Result<()> {
        self.post(&[], sql.as_bytes()).map(|_| ())
    }

    /// Runs a query and returns its rows as unescaped TabSeparated fields.
    /// The statement must not carry its own `FORMAT`.
    pub fn query_rows(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        let body = format!("{sql}\nFORMAT TabSeparated");
        let text = self.post(&[], body.as_bytes())?;
        tsv::parse_rows(&text)
    }

    /// Runs a query and calls `each` with every row's unescaped fields,
    /// borrowed from the answer where no escape needs undoing: for answers of
    /// many groups, where an owned `String` per field would cost more than
    /// the query. The statement must not carry its own `FORMAT`.
    pub fn query_each(
        &self,
        sql: &str,
        each: impl FnMut(&[Cow<'_, str>]) -> Result<()>,
    ) -> Result<()> {
        let body = format!("{sql}\nFORMAT TabSeparated");
        let text = self.post(&[], body.as_bytes())?;
        tsv::for_each_row(&text, each)
    }

    /// Runs a query expected to return one number.
    pub fn query_u64(&self, sql: &str) -> Result<u64> {
        let rows = self.query_rows(sql)?;
        let cell = rows
            .first()
            .and_then(|r| r.first())
            .ok_or_else(|| Error::Protocol(format!("no row for: {sql}")))?;
        cell.parse()
            .map_err(|_| Error::Protocol(format!("not a number: {cell:?}")))
    }

    /// Inserts TabSeparated rows (`columns` in order) into `table` of the
    /// database, tagged with `query_id` so a caller can tell whether the
    /// insert is still running after losing the connection.
    pub fn insert_tsv(
        &self,
        table: &str,
        columns: &str,
        query_id: &str,
        rows: &[u8],
    ) -> Result<()> {
        self.insert(table, columns, "TabSeparated", query_id, rows)
    }

    /// Inserts `RowBinary` rows (`columns` in order, each in its exact
    /// column type), tagged with `query_id` like [`Client::insert_tsv`].
    pub fn insert_row_binary(
        &self,
        table: &str,
        columns: &str,
        query_id: &str,
        rows: &[u8],
    ) -> Result<()> {
        self.insert(table, columns, "RowBinary", query_id, rows)
    }

    fn insert(
        &self,
        table: &str,
        columns: &str,
        format: &str,
        query_id: &str,
        rows: &[u8],
    ) -> Result<()> {
        let query = format!(
            "INSERT INTO {}.`{table}` ({columns}) FORMAT {format}",
            self.db()
        );
        self.post(&[("query", &query), ("query_id", query_id)], rows)
            .map(|_| ())
    }

    /// True while a query with this id runs on the server.
    pub fn is_running(&self, query_id: &str) -> Result<bool> {
        let n = self.query_u64(&format!(
            "SELECT count() FROM system.processes WHERE query_id = {}",
            tsv::quote(query_id)
        ))?;
        Ok(n > 0)
    }

    fn post(&self, params: &[(&str, &str)], body: &[u8]) -> Result<String> {
        let mut req = self.agent.post(self.endpoint.base());
        for (k, v) in params {
            req = req.query(*k, *v);
        }
        if let Some(auth) = self.endpoint.authorization() {
            req = req.header("Authorization", auth);
        }
        let transport = |e: ureq::Error| Error::Transport {
            endpoint: self.endpoint.base().to_string(),
            message: e.to_string(),
        };
        let mut resp = req.send(body).map_err(transport)?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(transport)?;
        if status == 200 {
            Ok(text)
        } else {
            Err(Error::Server {
                status,
                message: first_line(&text),
            })
        }
    }
}

/// ClickHouse error texts repeat themselves and carry stack traces: the first
/// line says what happened.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let mut s: String = line.chars().take(500).collect();
    if s.is_empty() {
        s = "(no message)".into();
    }
    s
}
