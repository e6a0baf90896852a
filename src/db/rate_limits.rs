//! GCRA buckets shared by every replica (`rate_limit_buckets`): one statement per request, on
//! its own (never inside a caller's transaction, so a bucket's row lock lasts one statement).
//!
//! A bucket of `capacity` units refilling one unit per `interval` keeps one time, its
//! theoretical arrival time (TAT): a request for `n` units is granted when the TAT, moved to now
//! if it is past, plus `n` intervals is at most `capacity` intervals ahead of now; the TAT then
//! moves by what was granted. The row's update is atomic, so replicas together admit exactly
//! the bucket's capacity, whatever their number. Time is `clock_timestamp()`, read once the
//! row is locked (not the statement's start, `now()`): the requests on one bucket then see
//! the clock in the order they update it, and the counts they report follow each other.

use diesel::QueryableByName;
use diesel::sql_types::{Bool, Double, Integer, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::cached::CacheStatement;

/// One request on a bucket.
#[derive(Clone, Copy, Debug)]
pub struct Take<'a> {
    pub key: &'a str,
    /// Units asked for.
    pub units: i32,
    /// The bucket's size, in units (a full bucket admits this many at once).
    pub capacity: i32,
    /// Seconds for one unit to come back.
    pub interval_secs: f64,
    /// `true`: all the units or none (an API request); `false`: as many as there are (pacing).
    pub all_or_none: bool,
}

impl<'a> Take<'a> {
    /// `units`, all or none, of `key`'s bucket of `per_minute` units that refills over a minute.
    pub fn per_minute(key: &'a str, units: i32, per_minute: i32) -> Self {
        Self {
            key,
            units,
            capacity: per_minute,
            interval_secs: 60.0 / f64::from(per_minute),
            all_or_none: true,
        }
    }
}

/// What a request was given.
#[derive(Clone, Copy, Debug, PartialEq, QueryableByName)]
pub struct Granted {
    /// Units granted (0 when refused).
    #[diesel(sql_type = Integer)]
    pub units: i32,
    /// How far the bucket's TAT is ahead of now after the request, in seconds (0 when full).
    #[diesel(sql_type = Double)]
    pub ahead_secs: f64,
}

impl Granted {
    /// Units left in the bucket.
    pub fn remaining(&self, take: &Take<'_>) -> i32 {
        available(take, self.ahead_secs)
    }

    /// Seconds until `units` more could be granted.
    pub fn wait_secs(&self, take: &Take<'_>, units: i32) -> f64 {
        (self.ahead_secs - f64::from(take.capacity - units) * take.interval_secs).max(0.0)
    }
}

/// Units free in a bucket whose TAT is `ahead_secs` ahead of now (the same rule as the SQL).
fn available(take: &Take<'_>, ahead_secs: f64) -> i32 {
    let used = ahead_secs.max(0.0) / take.interval_secs;
    ((f64::from(take.capacity) - used + 1e-9).floor() as i32).max(0)
}

/// What a bucket would grant: `$2` units asked, `$4` capacity, `$5` all or none, from the free
/// units `free`.
const GRANT: &str = "CASE WHEN $5 THEN (CASE WHEN $2 <= {free} THEN $2 ELSE 0 END) \
                     ELSE GREATEST(0, LEAST($2, {free})) END";

/// Free units of the existing row `b`.
const FREE: &str =
    "floor($4 - GREATEST(0, EXTRACT(EPOCH FROM (b.tat - clock_timestamp()))) / $3 + 1e-9)::int";

fn statement() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let fresh = GRANT.replace("{free}", "$4");
        let existing = GRANT.replace("{free}", FREE);
        format!(
            "INSERT INTO rate_limit_buckets AS b (key, tat, granted) \
             SELECT $1, clock_timestamp() + make_interval(secs => g * $3), g \
             FROM (SELECT {fresh} AS g) AS f \
             ON CONFLICT (key) DO UPDATE SET \
               granted = {existing}, \
               tat = GREATEST(b.tat, clock_timestamp()) + make_interval(secs => ({existing}) * $3) \
             RETURNING granted AS units, \
               GREATEST(0, EXTRACT(EPOCH FROM (tat - clock_timestamp())))::float8 AS ahead_secs"
        )
    })
}

/// Takes units from a bucket (created full on its first request).
pub async fn take(conn: &mut AsyncPgConnection, take: &Take<'_>) -> diesel::QueryResult<Granted> {
    diesel::sql_query(statement())
        .bind::<Text, _>(take.key)
        .bind::<Integer, _>(take.units)
        .bind::<Double, _>(take.interval_secs)
        .bind::<Integer, _>(take.capacity)
        .bind::<Bool, _>(take.all_or_none)
        .cached()
        .get_result(conn)
        .await
}

/// Deletes buckets full for at least `idle_secs` (a missing bucket is a full one); returns how
/// many.
pub async fn purge_full(
    conn: &mut AsyncPgConnection,
    idle_secs: f64,
) -> diesel::QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM rate_limit_buckets WHERE tat < now() - make_interval(secs => $1)",
    )
    .bind::<Double, _>(idle_secs)
    .execute(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_units_follow_the_tat() {
        let t = Take::per_minute("k", 1, 10);
        assert_eq!(available(&t, 0.0), 10);
        assert_eq!(
            available(&t, -5.0),
            10,
            "a TAT in the past is a full bucket"
        );
        assert_eq!(available(&t, 6.0), 9);
        assert_eq!(available(&t, 60.0), 0);
        assert_eq!(available(&t, 59.0), 0, "a unit not fully back is not free");
    }

    #[test]
    fn the_wait_is_until_the_units_are_back() {
        let t = Take::per_minute("k", 1, 10);
        let full = Granted {
            units: 0,
            ahead_secs: 60.0,
        };
        assert!((full.wait_secs(&t, 1) - 6.0).abs() < 1e-9);
        assert!((full.wait_secs(&t, 10) - 60.0).abs() < 1e-9);
        let empty = Granted {
            units: 1,
            ahead_secs: 0.0,
        };
        assert_eq!(empty.wait_secs(&t, 3), 0.0);
    }
}
