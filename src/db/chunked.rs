//! Queries over a list of patients longer than one statement may bind.
//!
//! A user's scope is their care team, and `patient_id IN (…)` binds one parameter per
//! patient: SQLite refuses a statement with more than 32,766 and PostgreSQL one with more
//! than 65,535, so a care team past that answered every list with a 500 and failed every
//! replay (an outside audit). Such a query runs once per chunk of patients instead, and
//! the chunks' answers are merged in the query's own order.

use diesel::QueryResult;

/// Patients bound in one statement: well under both backends' limits, with room for the
/// query's other parameters.
pub const PATIENTS_PER_QUERY: usize = 10_000;

/// Runs `query` over `patients` (`None`: every patient) a chunk at a time when there are
/// more than [`PATIENTS_PER_QUERY`], and keeps the first `limit` rows of the union in the
/// order `key` gives. Each chunk's answer must be its own first `limit` rows in that order:
/// the first `limit` of the union are then among them.
pub fn over_patients<T, K, Q>(
    patients: Option<&[String]>,
    limit: i64,
    key: impl Fn(&T) -> K,
    mut query: Q,
) -> QueryResult<Vec<T>>
where
    K: Ord,
    Q: FnMut(Option<&[String]>) -> QueryResult<Vec<T>>,
{
    let Some(patients) = patients.filter(|p| p.len() > PATIENTS_PER_QUERY) else {
        return query(patients);
    };
    let mut rows = Vec::new();
    for chunk in patients.chunks(PATIENTS_PER_QUERY) {
        rows.extend(query(Some(chunk))?);
    }
    rows.sort_by_key(key);
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands in for a table: each patient's rows, numbered.
    fn rows_of(patients: Option<&[String]>, limit: i64) -> QueryResult<Vec<i64>> {
        let Some(patients) = patients else {
            return Ok(Vec::new());
        };
        assert!(
            patients.len() <= PATIENTS_PER_QUERY,
            "one statement bound too many"
        );
        let mut rows: Vec<i64> = patients
            .iter()
            .filter_map(|p| p.parse::<i64>().ok())
            .filter(|n| n % 7 == 0)
            .collect();
        rows.sort_unstable_by(|a, b| b.cmp(a));
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(rows)
    }

    #[test]
    fn a_long_list_is_queried_in_chunks_and_merged_in_order() {
        let patients: Vec<String> = (0..35_000).map(|n| n.to_string()).collect();
        let merged = over_patients(
            Some(&patients),
            5,
            |n: &i64| std::cmp::Reverse(*n),
            |p| rows_of(p, 5),
        )
        .expect("chunks");
        assert_eq!(merged, vec![34_993, 34_986, 34_979, 34_972, 34_965]);
    }

    #[test]
    fn a_short_list_is_one_query() {
        let patients: Vec<String> = vec!["14".into(), "3".into(), "21".into()];
        let mut calls = 0;
        let rows = over_patients(
            Some(&patients),
            10,
            |n: &i64| std::cmp::Reverse(*n),
            |p| {
                calls += 1;
                rows_of(p, 10)
            },
        )
        .expect("one query");
        assert_eq!((rows, calls), (vec![21, 14], 1));
    }
}
