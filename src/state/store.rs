//! Opening the database, the schema, and the article/file/seen records.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

/// A database error; the daemon treats it as fatal for the operation at hand.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state folder {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot encode alert: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("delivered-alerts log {path}: {source}")]
    DeliveredLog {
        path: String,
        source: std::io::Error,
    },
}

/// Identity of a file on disk, to skip unchanged files without reading them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FileKey {
    pub path: String,
    pub size: u64,
    pub mtime_ns: i64,
}

/// A delivery to queue: one alert for one sink.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub sink: String,
    pub alert_id: String,
    pub rule: String,
    /// The alert as JSON (the webhook body).
    pub payload: String,
}

/// Everything to record, atomically, once an article was processed.
#[derive(Debug, Clone, Default)]
pub struct ProcessedArticle {
    pub article_id: String,
    pub file: FileKey,
    /// (rule id, entity id) pairs now seen by `first_seen` rules.
    pub seen: Vec<(String, String)>,
    pub deliveries: Vec<NewDelivery>,
    /// Milliseconds since the Unix epoch.
    pub now_ms: i64,
    /// The article's near-duplicate signature (MinHash bytes), if any.
    pub fingerprint: Option<Vec<u8>>,
    /// (rule, throttle key) pairs that fired now.
    pub fires: Vec<(String, String)>,
    /// (rule, article reference as JSON): matches counted towards a threshold.
    pub threshold_hits: Vec<(String, String)>,
    /// Rules whose threshold fired now: their counted matches are used up.
    pub thresholds_fired: Vec<String>,
}

/// An open read transaction (see [`Store::read_snapshot`]); it ends, with
/// nothing to undo, when dropped.
pub struct ReadSnapshot<'a> {
    _transaction: rusqlite::Transaction<'a>,
}

/// A connection to the state database. Each task that needs the database
/// opens its own; SQLite (WAL) serialises writers.
pub struct Store {
    pub(super) connection: Connection,
}

/// The schema. An alert's JSON (the webhook body, a few KB) is kept once in
/// `alert_payloads`, not in each of its `outbox` rows: the rows are what a
/// sink worker updates, one per delivered alert, and SQLite rewrites a
/// whole row, overflow pages included, on every update (a 5.4 KB payload
/// made each "delivered" mark write 20 KB to the WAL instead of 8 KB). The
/// payloads are keyed by an integer, appended in order: a key by alert id
/// (a hash) would put each insert on a random page of its index.
///
/// Only `articles` and `files` are keyed by a hash or a name: those keys are
/// looked up. The outbox and the fingerprints are keyed by their row
/// number, appended in order. A unique index on the outbox's delivery id
/// or on the fingerprints' article id would put each insert on a random
/// page of a B-tree that grows with every article (written to the WAL,
/// again at the checkpoint, and read back once it no longer fits the page
/// cache), and would guard nothing: both are written only for an article
/// `articles` did not have yet, so their ids cannot repeat.
///
/// The outbox's index holds only the rows not yet delivered (a query uses
/// it when it says `status != 'delivered'`): a sink worker's mark removes
/// one entry from it instead of moving the entry to the delivered end
/// (one index page written instead of two), and the index stays as small
/// as the backlog however long the outbox grows. Databases from before it
/// drop the older index over every row (`outbox_due`) on open.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    processed_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    article_id TEXT
);
CREATE TABLE IF NOT EXISTS seen (
    rule TEXT NOT NULL,
    entity TEXT NOT NULL,
    article_id TEXT NOT NULL,
    seen_at_ms INTEGER NOT NULL,
    PRIMARY KEY (rule, entity)
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    sink TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    article_id TEXT NOT NULL,
    payload_id INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    last_error TEXT
);
DROP INDEX IF EXISTS outbox_due;
CREATE INDEX IF NOT EXISTS outbox_undelivered ON outbox (sink, status, seq)
    WHERE status != 'delivered';
CREATE TABLE IF NOT EXISTS alert_payloads (
    id INTEGER PRIMARY KEY,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fingerprints (
    article_id TEXT NOT NULL,
    signature BLOB NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS fingerprints_at ON fingerprints (at_ms);
CREATE TABLE IF NOT EXISTS sink_digests (
    sink TEXT PRIMARY KEY,
    at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rule_fires (
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (rule, key)
);
CREATE TABLE IF NOT EXISTS rule_hits (
    rule TEXT NOT NULL,
    article_id TEXT NOT NULL,
    article TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (rule, article_id)
);
";

/// Upgrades a database written before `alert_payloads` existed (its
/// `outbox` rows carried their payload): copies each row's payload over,
/// under the row's `seq`, and drops the column, in one transaction, once.
/// Connections opened at the same time wait for the write lock and then
/// find nothing left to do.
fn move_payloads_out_of_the_outbox(connection: &mut Connection) -> Result<(), StoreError> {
    let has_payload = |connection: &Connection| -> rusqlite::Result<bool> {
        connection
            .prepare("SELECT 1 FROM pragma_table_info('outbox') WHERE name = 'payload'")?
            .exists([])
    };
    if !has_payload(connection)? {
        return Ok(());
    }
    // Rolled back when dropped without a commit (an error below).
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if !has_payload(&transaction)? {
        return Ok(());
    }
    let moved = transaction.execute(
        "INSERT INTO alert_payloads (id, payload) SELECT seq, payload FROM outbox",
        [],
    )?;
    transaction.execute_batch(
        "ALTER TABLE outbox ADD COLUMN payload_id INTEGER;
         UPDATE outbox SET payload_id = seq;
         ALTER TABLE outbox DROP COLUMN payload;",
    )?;
    transaction.commit()?;
    if moved > 0 {
        tracing::info!(
            alerts = moved,
            "database upgraded: alert payloads moved out of the outbox"
        );
    }
    Ok(())
}

/// Rebuilds, once, the tables of a database written before their unique
/// indexes were dropped (see [`SCHEMA`]): `outbox` without the one on `id`,
/// `fingerprints` without the one on `article_id`. The old tables are set
/// aside and [`SCHEMA`] creates the new ones with their indexes. Every row
/// is kept, with its `seq`; `AUTOINCREMENT` goes on from the highest. One
/// transaction; connections opened at the same time wait and find nothing
/// left to do.
fn drop_unique_indexes(connection: &mut Connection) -> Result<(), StoreError> {
    let has_unique = |connection: &Connection, table: &str| -> rusqlite::Result<bool> {
        connection
            .prepare_cached(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND name LIKE 'sqlite_autoindex_%'",
            )?
            .exists([table])
    };
    if !has_unique(connection, "outbox")? && !has_unique(connection, "fingerprints")? {
        return Ok(());
    }
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let outbox = has_unique(&transaction, "outbox")?;
    let fingerprints = has_unique(&transaction, "fingerprints")?;
    // Index names are the database's, not the table's: the old tables'
    // go, so that the schema creates them on the new ones.
    if outbox {
        transaction.execute_batch(
            "DROP INDEX IF EXISTS outbox_undelivered;
             ALTER TABLE outbox RENAME TO outbox_old;",
        )?;
    }
    if fingerprints {
        transaction.execute_batch(
            "DROP INDEX IF EXISTS fingerprints_at;
             ALTER TABLE fingerprints RENAME TO fingerprints_old;",
        )?;
    }
    transaction.execute_batch(SCHEMA)?;
    if outbox {
        transaction.execute_batch(
            "INSERT INTO outbox (seq, id, sink, alert_id, rule, article_id, payload_id, status, attempts, created_at_ms, next_attempt_ms, last_error)
                SELECT seq, id, sink, alert_id, rule, article_id, payload_id, status, attempts, created_at_ms, next_attempt_ms, last_error FROM outbox_old;
             UPDATE sqlite_sequence
                SET seq = MAX(seq, IFNULL((SELECT seq FROM sqlite_sequence WHERE name = 'outbox_old'), 0))
                WHERE name = 'outbox';
             DROP TABLE outbox_old;",
        )?;
    }
    if fingerprints {
        transaction.execute_batch(
            "INSERT INTO fingerprints (article_id, signature, at_ms)
                SELECT article_id, signature, at_ms FROM fingerprints_old ORDER BY at_ms;
             DROP TABLE fingerprints_old;",
        )?;
    }
    transaction.commit()?;
    tracing::info!(
        outbox,
        fingerprints,
        "database upgraded: unique indexes that only slowed inserts dropped"
    );
    Ok(())
}

/// A connection's page cache, in KiB as SQLite takes it (negative): 1 MiB
/// instead of SQLite's 2, since the daemon has one connection per task (7
/// or more) and another connection's commit empties this cache at the next
/// read transaction anyway.
const CACHE_KIB: i64 = -1024;
/// The recorder's page cache (see [`Store::open_for_recording`]).
const RECORDER_CACHE_KIB: i64 = -8192;

impl Store {
    /// Opens (creating when missing) `dir/newswatch.db`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
        let connection = Connection::open(dir.join("newswatch.db"))?;
        connection.busy_timeout(std::time::Duration::from_secs(30))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "cache_size", CACHE_KIB)?;
        Self::init(connection)
    }

    /// [`Store::open`] for a sink worker, whose writes only settle
    /// deliveries (delivered, retry time, dead letter): they are committed
    /// without waiting for the disk (`synchronous=NORMAL`), instead of an
    /// `fsync` per delivered alert. A crash or kill of the process loses
    /// none of them; a power cut or kernel crash may lose the last few, and
    /// the alerts they settled are then sent again (at least once). The
    /// outbox rows themselves are written by the recorder, which waits.
    pub fn open_for_delivery(dir: &Path) -> Result<Store, StoreError> {
        let store = Self::open(dir)?;
        store
            .connection
            .pragma_update(None, "synchronous", "NORMAL")?;
        Ok(store)
    }

    /// [`Store::open`] for the recorder, which writes a batch of up to a few
    /// hundred articles per transaction: with the default 1 MiB of page
    /// cache, SQLite spills dirty pages into the WAL in the middle of such a
    /// transaction and writes them again at its commit. The cache is filled
    /// only as far as a batch needs it.
    pub fn open_for_recording(dir: &Path) -> Result<Store, StoreError> {
        let store = Self::open(dir)?;
        store
            .connection
            .pragma_update(None, "cache_size", RECORDER_CACHE_KIB)?;
        Ok(store)
    }

    /// A private in-memory database: `newswatch test` keeps nothing.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut connection: Connection) -> Result<Store, StoreError> {
        connection.execute_batch(SCHEMA)?;
        move_payloads_out_of_the_outbox(&mut connection)?;
        drop_unique_indexes(&mut connection)?;
        // Every hot query is a cached statement; the pipeline alone has about 16.
        connection.set_prepared_statement_cache_capacity(48);
        Ok(Store { connection })
    }

    /// Starts a read transaction that lasts until the returned guard is
    /// dropped: the queries in between see one state of the database, and
    /// this connection's page cache is checked once instead of per query
    /// (another connection's commit empties it). Write with
    /// [`Store::commit_batch`] only after dropping it.
    pub fn read_snapshot(&self) -> Result<ReadSnapshot<'_>, StoreError> {
        Ok(ReadSnapshot {
            _transaction: self.connection.unchecked_transaction()?,
        })
    }

    /// True when this exact file (path, size, mtime) was handled before.
    pub fn file_unchanged(&self, key: &FileKey) -> Result<bool, StoreError> {
        Ok(self
            .connection
            .prepare_cached("SELECT 1 FROM files WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3")?
            .exists(params![key.path, key.size as i64, key.mtime_ns])?)
    }

    /// True when an article with this content hash was processed before.
    pub fn article_processed(&self, article_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .connection
            .prepare_cached("SELECT 1 FROM articles WHERE id = ?1")?
            .exists([article_id])?)
    }

    /// Remembers a file that needs no processing (a duplicate, or skipped).
    pub fn record_file(&self, key: &FileKey, article_id: Option<&str>) -> Result<(), StoreError> {
        self.connection.execute(
            "INSERT OR REPLACE INTO files (path, size, mtime_ns, article_id) VALUES (?1, ?2, ?3, ?4)",
            params![key.path, key.size as i64, key.mtime_ns, article_id],
        )?;
        Ok(())
    }

    /// Which of `entities` rule `rule` has never seen.
    pub fn unseen<E: AsRef<str> + Clone>(
        &self,
        rule: &str,
        entities: &[E],
    ) -> Result<Vec<E>, StoreError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT 1 FROM seen WHERE rule = ?1 AND entity = ?2")?;
        let mut unseen = Vec::new();
        for entity in entities {
            if !statement.exists(params![rule, entity.as_ref()])? {
                unseen.push(entity.clone());
            }
        }
        Ok(unseen)
    }

    /// Records the article, its file, the newly seen entities and every
    /// delivery, in one transaction. Returns false (and changes nothing but
    /// the file record) when the article was already recorded.
    pub fn commit_article(&mut self, processed: &ProcessedArticle) -> Result<bool, StoreError> {
        let recorded = self.commit_batch(std::slice::from_ref(processed), &[])?;
        Ok(recorded.first().copied().unwrap_or(false))
    }

    /// Records many articles and file records in ONE transaction (group
    /// commit: one fsync for the whole batch). A crash leaves either all of
    /// them with all their deliveries, or none. Returns, per article, whether
    /// it was new.
    pub fn commit_batch(
        &mut self,
        articles: &[ProcessedArticle],
        files: &[(FileKey, Option<String>)],
    ) -> Result<Vec<bool>, StoreError> {
        let transaction = self.connection.transaction()?;
        let mut recorded = Vec::with_capacity(articles.len());
        {
            let mut insert_article = transaction.prepare_cached(
                "INSERT OR IGNORE INTO articles (id, path, processed_at_ms) VALUES (?1, ?2, ?3)",
            )?;
            let mut insert_file = transaction.prepare_cached(
                "INSERT OR REPLACE INTO files (path, size, mtime_ns, article_id) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut insert_seen = transaction.prepare_cached(
                "INSERT OR IGNORE INTO seen (rule, entity, article_id, seen_at_ms) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut insert_delivery = transaction.prepare_cached(
                "INSERT INTO outbox (id, sink, alert_id, rule, article_id, payload_id, created_at_ms, next_attempt_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            )?;
            let mut insert_payload =
                transaction.prepare_cached("INSERT INTO alert_payloads (payload) VALUES (?1)")?;
            let mut insert_fingerprint = transaction.prepare_cached(
                "INSERT INTO fingerprints (article_id, signature, at_ms) VALUES (?1, ?2, ?3)",
            )?;
            let mut insert_fire = transaction.prepare_cached(
                "INSERT OR REPLACE INTO rule_fires (rule, key, at_ms) VALUES (?1, ?2, ?3)",
            )?;
            let mut delete_hits =
                transaction.prepare_cached("DELETE FROM rule_hits WHERE rule = ?1")?;
            let mut insert_hit = transaction.prepare_cached(
                "INSERT OR REPLACE INTO rule_hits (rule, article_id, article, at_ms) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (key, article_id) in files {
                insert_file.execute(params![
                    key.path,
                    key.size as i64,
                    key.mtime_ns,
                    article_id
                ])?;
            }
            for processed in articles {
                let inserted = insert_article.execute(params![
                    processed.article_id,
                    processed.file.path,
                    processed.now_ms
                ])?;
                insert_file.execute(params![
                    processed.file.path,
                    processed.file.size as i64,
                    processed.file.mtime_ns,
                    processed.article_id
                ])?;
                recorded.push(inserted > 0);
                if inserted == 0 {
                    continue;
                }
                for (rule, entity) in &processed.seen {
                    insert_seen.execute(params![
                        rule,
                        entity,
                        processed.article_id,
                        processed.now_ms
                    ])?;
                }
                if let Some(signature) = &processed.fingerprint {
                    insert_fingerprint.execute(params![
                        processed.article_id,
                        signature,
                        processed.now_ms
                    ])?;
                }
                for (rule, key) in &processed.fires {
                    insert_fire.execute(params![rule, key, processed.now_ms])?;
                }
                for rule in &processed.thresholds_fired {
                    delete_hits.execute(params![rule])?;
                }
                for (rule, article) in &processed.threshold_hits {
                    insert_hit.execute(params![
                        rule,
                        processed.article_id,
                        article,
                        processed.now_ms
                    ])?;
                }
                // An alert's deliveries (one per sink) are adjacent: its
                // payload is stored once. The article is new, so none of
                // them was queued before.
                for deliveries in processed
                    .deliveries
                    .chunk_by(|a, b| a.alert_id == b.alert_id)
                {
                    insert_payload.execute([&deliveries[0].payload])?;
                    let payload_id = transaction.last_insert_rowid();
                    for delivery in deliveries {
                        insert_delivery.execute(params![
                            delivery_id(&delivery.alert_id, &delivery.sink),
                            delivery.sink,
                            delivery.alert_id,
                            delivery.rule,
                            processed.article_id,
                            payload_id,
                            processed.now_ms
                        ])?;
                    }
                }
            }
        }
        transaction.commit()?;
        Ok(recorded)
    }
}

impl Store {
    /// Near-duplicate signatures of articles processed since `since_ms`,
    /// newest first (at most `limit`): (article id, signature, when).
    pub fn recent_fingerprints(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>, i64)>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT article_id, signature, at_ms FROM fingerprints WHERE at_ms >= ?1 ORDER BY at_ms DESC LIMIT ?2",
        )?;
        let rows = statement.query_map(params![since_ms, limit as i64], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// When rule `rule` last fired for throttle key `key`.
    pub fn last_fire(&self, rule: &str, key: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .connection
            .prepare_cached("SELECT at_ms FROM rule_fires WHERE rule = ?1 AND key = ?2")?
            .query_row(params![rule, key], |row| row.get(0))
            .optional()?)
    }

    /// Matches counted towards rule `rule`'s threshold since `since_ms`:
    /// (article id, article reference JSON), oldest first.
    pub fn threshold_hits(
        &self,
        rule: &str,
        since_ms: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT article_id, article FROM rule_hits WHERE rule = ?1 AND at_ms >= ?2 ORDER BY at_ms",
        )?;
        let rows = statement.query_map(params![rule, since_ms], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

/// Deterministic id of the delivery of one alert to one sink.
pub fn delivery_id(alert_id: &str, sink: &str) -> String {
    format!("{alert_id}:{sink}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn processed(article: &str, path: &str) -> ProcessedArticle {
        ProcessedArticle {
            article_id: article.to_string(),
            file: FileKey {
                path: path.to_string(),
                size: 10,
                mtime_ns: 5,
            },
            seen: vec![("new-air-defense".to_string(), "tor-m2".to_string())],
            deliveries: vec![NewDelivery {
                sink: "archive".to_string(),
                alert_id: format!("{article}-alert"),
                rule: "tobruk".to_string(),
                payload: "{}".to_string(),
            }],
            now_ms: 1000,
            ..ProcessedArticle::default()
        }
    }

    /// The value of `PRAGMA name` on `store`'s connection.
    fn pragma(store: &Store, name: &str) -> i64 {
        store
            .connection
            .query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
            .expect("pragma")
    }

    /// The first column of every row of `sql`.
    fn names(store: &Store, sql: &str) -> Vec<String> {
        store
            .connection
            .prepare(sql)
            .expect("prepare")
            .query_map([], |row| row.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    #[test]
    fn an_article_is_recorded_once_with_its_deliveries_and_seen_entities() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(dir.path()).expect("open");
        assert!(store
            .commit_article(&processed("a1", "seeds/a.txt"))
            .expect("commit"));
        assert!(!store
            .commit_article(&processed("a1", "seeds/copy.txt"))
            .expect("commit"));
        assert!(store.article_processed("a1").expect("query"));
        assert!(store
            .file_unchanged(&FileKey {
                path: "seeds/copy.txt".to_string(),
                size: 10,
                mtime_ns: 5
            })
            .expect("query"));
        let entities = vec!["tor-m2".to_string(), "pantsir".to_string()];
        assert_eq!(
            store.unseen("new-air-defense", &entities).expect("query"),
            ["pantsir"]
        );
        assert_eq!(store.pending_count().expect("count"), 1);
        drop(store);
        // A restart sees the same state.
        let store = Store::open(dir.path()).expect("reopen");
        assert!(store.article_processed("a1").expect("query"));
        assert_eq!(store.pending_count().expect("count"), 1);
    }

    #[test]
    fn only_a_sink_worker_commits_without_waiting_for_the_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let synchronous = |store: &Store| pragma(store, "synchronous");
        let mut recorder = Store::open_for_recording(dir.path()).expect("open");
        let worker = Store::open_for_delivery(dir.path()).expect("open");
        assert_eq!(
            (synchronous(&recorder), synchronous(&worker)),
            (2, 1),
            "FULL, NORMAL"
        );
        let cache_kib = |store: &Store| pragma(store, "cache_size");
        assert_eq!(
            (cache_kib(&recorder), cache_kib(&worker)),
            (RECORDER_CACHE_KIB, CACHE_KIB),
            "a recorder's batch fits in its cache"
        );
        assert!(recorder
            .commit_article(&processed("a1", "seeds/a.txt"))
            .expect("commit"));
        let queued = worker
            .next_pending("archive")
            .expect("query")
            .expect("the recorder's row");
        worker.mark_delivered(queued.seq, 1).expect("mark");
        assert_eq!(recorder.pending_count().expect("count"), 0);
    }

    /// Every index of `table`, the automatic ones (of `UNIQUE` and
    /// `PRIMARY KEY`) included.
    fn indexes(store: &Store, table: &str) -> Vec<String> {
        names(
            store,
            &format!("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '{table}' ORDER BY name"),
        )
    }

    #[test]
    fn the_outbox_and_the_fingerprints_have_no_index_an_insert_puts_on_a_random_page() {
        let store = Store::open_in_memory().expect("open");
        assert_eq!(indexes(&store, "outbox"), ["outbox_undelivered"]);
        assert_eq!(indexes(&store, "fingerprints"), ["fingerprints_at"]);
    }

    #[test]
    fn a_database_with_unique_indexes_is_rebuilt_without_them_keeping_every_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            // The two tables as newswatch wrote them before.
            let old = Connection::open(dir.path().join("newswatch.db")).expect("open");
            old.execute_batch(
                "CREATE TABLE outbox (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    sink TEXT NOT NULL,
                    alert_id TEXT NOT NULL,
                    rule TEXT NOT NULL,
                    article_id TEXT NOT NULL,
                    payload_id INTEGER NOT NULL,
                    status TEXT NOT NULL DEFAULT 'pending',
                    attempts INTEGER NOT NULL DEFAULT 0,
                    created_at_ms INTEGER NOT NULL,
                    next_attempt_ms INTEGER NOT NULL,
                    last_error TEXT
                );
                CREATE INDEX outbox_undelivered ON outbox (sink, status, seq)
                    WHERE status != 'delivered';
                CREATE TABLE alert_payloads (id INTEGER PRIMARY KEY, payload TEXT NOT NULL);
                INSERT INTO alert_payloads VALUES (1, '{\"id\":\"a1\"}'), (2, '{\"id\":\"a2\"}');
                INSERT INTO outbox (seq, id, sink, alert_id, rule, article_id, payload_id, status, attempts, created_at_ms, next_attempt_ms, last_error)
                VALUES (3, 'a1:hook', 'hook', 'a1', 'tobruk', 'x', 1, 'delivered', 1, 1, 1, NULL),
                       (7, 'a2:hook', 'hook', 'a2', 'tobruk', 'y', 2, 'pending', 2, 2, 9, 'HTTP 500');
                -- Rows up to 10 were once queued; AUTOINCREMENT never reuses them.
                UPDATE sqlite_sequence SET seq = 10 WHERE name = 'outbox';
                CREATE TABLE fingerprints (
                    article_id TEXT PRIMARY KEY,
                    signature BLOB NOT NULL,
                    at_ms INTEGER NOT NULL
                );
                CREATE INDEX fingerprints_at ON fingerprints (at_ms);
                INSERT INTO fingerprints VALUES ('x', x'0102', 1), ('y', x'0304', 2);",
            )
            .expect("old schema");
        }
        let mut store = Store::open(dir.path()).expect("upgrade");
        let _second = Store::open(dir.path()).expect("open again");
        assert_eq!(indexes(&store, "outbox"), ["outbox_undelivered"]);
        assert_eq!(indexes(&store, "fingerprints"), ["fingerprints_at"]);
        let pending = store.next_pending("hook").expect("query").expect("a2");
        assert_eq!(
            (
                pending.seq,
                pending.id.as_str(),
                pending.payload.as_str(),
                pending.attempts,
                pending.next_attempt_ms,
                pending.last_error.as_deref()
            ),
            (7, "a2:hook", r#"{"id":"a2"}"#, 2, 9, Some("HTTP 500"))
        );
        assert_eq!(
            store.recent_fingerprints(0, 10).expect("fingerprints"),
            [
                ("y".to_string(), vec![3, 4], 2),
                ("x".to_string(), vec![1, 2], 1)
            ]
        );
        // New rows come after every row ever queued: a sink's order holds,
        // and a number is never used twice.
        assert!(store
            .commit_article(&processed("a3", "seeds/c.txt"))
            .expect("commit"));
        let queued = store.undelivered().expect("list");
        assert_eq!(
            queued.iter().map(|d| d.seq).collect::<Vec<_>>(),
            [7, 11],
            "{queued:?}"
        );
    }

    #[test]
    fn a_database_with_payloads_in_its_outbox_is_upgraded_without_losing_a_delivery() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            // The outbox as newswatch wrote it before `alert_payloads`.
            let old = Connection::open(dir.path().join("newswatch.db")).expect("open");
            old.execute_batch(
                "CREATE TABLE outbox (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    sink TEXT NOT NULL,
                    alert_id TEXT NOT NULL,
                    rule TEXT NOT NULL,
                    article_id TEXT NOT NULL,
                    payload TEXT NOT NULL,
                    status TEXT NOT NULL DEFAULT 'pending',
                    attempts INTEGER NOT NULL DEFAULT 0,
                    created_at_ms INTEGER NOT NULL,
                    next_attempt_ms INTEGER NOT NULL,
                    last_error TEXT
                );
                CREATE INDEX outbox_due ON outbox (sink, status, seq);
                INSERT INTO outbox (id, sink, alert_id, rule, article_id, payload, status, created_at_ms, next_attempt_ms)
                VALUES ('a1:hook', 'hook', 'a1', 'tobruk', 'x', '{\"id\":\"a1\"}', 'delivered', 1, 1),
                       ('a2:hook', 'hook', 'a2', 'tobruk', 'y', '{\"id\":\"a2\"}', 'pending', 2, 2),
                       ('a2:slack', 'slack', 'a2', 'tobruk', 'y', '{\"id\":\"a2\"}', 'dead', 2, 2);",
            )
            .expect("old schema");
        }
        let first = Store::open(dir.path()).expect("upgrade");
        let second = Store::open(dir.path()).expect("open again");
        let pending = second.next_pending("hook").expect("query").expect("a2");
        assert_eq!(
            (pending.alert_id.as_str(), pending.payload.as_str()),
            ("a2", r#"{"id":"a2"}"#)
        );
        let undelivered = first.undelivered().expect("list");
        assert_eq!(
            undelivered
                .iter()
                .map(|d| (d.id.as_str(), d.payload.as_str()))
                .collect::<Vec<_>>(),
            [
                ("a2:hook", r#"{"id":"a2"}"#),
                ("a2:slack", r#"{"id":"a2"}"#)
            ]
        );
        let payloads: i64 = first
            .connection
            .query_row("SELECT COUNT(*) FROM alert_payloads", [], |row| row.get(0))
            .expect("count");
        assert_eq!(payloads, 3, "the old rows' payloads, one each");
        let columns = names(&first, "SELECT name FROM pragma_table_info('outbox')");
        assert!(!columns.iter().any(|c| c == "payload"), "{columns:?}");
        let indexes = names(
            &first,
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outbox' AND sql IS NOT NULL ORDER BY name",
        );
        assert_eq!(
            indexes,
            ["outbox_undelivered"],
            "the index over every row is gone"
        );
    }
}
