//! `exact_percentile(value, percent)`: the exact percentile of a group, interpolated linearly between the
//! two closest ranks like `percentile_cont` (with the n values sorted v[0..n-1] and h = (n − 1) × p:
//! v[⌊h⌋] + (h − ⌊h⌋) × (v[⌊h⌋ + 1] − v[⌊h⌋])). NULL values are skipped; no values gives NULL.
//!
//! `percent` is a whole number (50, 90) so that the rank arithmetic is exact integer arithmetic:
//! DataFusion 55's `percentile_cont` differs from the exact figure by about 1e-6 of the gap between the
//! ranks, and the models' percentiles must equal what DuckDB and a hand calculation give.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, ListArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, AggregateUDF, Volatility, create_udaf};

/// The function, to register in a session.
pub fn exact_percentile() -> AggregateUDF {
    create_udaf(
        "exact_percentile",
        vec![DataType::Float64, DataType::Int64],
        Arc::new(DataType::Float64),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::new(ExactPercentile::default()))),
        Arc::new(vec![DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))), DataType::Int64]),
    )
}

#[derive(Debug, Default)]
struct ExactPercentile {
    values: Vec<f64>,
    percent: Option<i64>,
}

impl ExactPercentile {
    fn set_percent(&mut self, percents: &ArrayRef) -> Result<()> {
        let percents = percents.as_primitive::<Int64Type>();
        for percent in percents.iter().flatten() {
            if !(0..=100).contains(&percent) {
                return Err(DataFusionError::Plan(format!(
                    "exact_percentile: percent must be a whole number from 0 to 100, not {percent}"
                )));
            }
            match self.percent {
                Some(known) if known != percent => {
                    return Err(DataFusionError::Plan(
                        "exact_percentile: percent must be the same on every row (a constant)".into(),
                    ));
                }
                _ => self.percent = Some(percent),
            }
        }
        Ok(())
    }
}

impl Accumulator for ExactPercentile {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.values.extend(values[0].as_primitive::<Float64Type>().iter().flatten());
        self.set_percent(&values[1])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists: &ListArray = states[0].as_list::<i32>();
        for list in lists.iter().flatten() {
            self.values.extend(list.as_primitive::<Float64Type>().iter().flatten());
        }
        self.set_percent(&states[1])
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = ListArray::from_iter_primitive::<Float64Type, _, _>([Some(self.values.iter().map(|v| Some(*v)))]);
        Ok(vec![ScalarValue::List(Arc::new(list)), ScalarValue::Int64(self.percent)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let (Some(percent), false) = (self.percent, self.values.is_empty()) else {
            return Ok(ScalarValue::Float64(None));
        };
        self.values.sort_unstable_by(f64::total_cmp);
        let scaled = (self.values.len() as i64 - 1) * percent;
        let (rank, remainder) = ((scaled / 100) as usize, scaled % 100);
        let low = self.values[rank];
        let high = self.values.get(rank + 1).copied().unwrap_or(low);
        Ok(ScalarValue::Float64(Some(low + remainder as f64 / 100.0 * (high - low))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.capacity() * std::mem::size_of::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Array;
    use datafusion::prelude::SessionContext;

    use super::*;

    async fn percentile(values: &str, percent: i64) -> Option<f64> {
        let ctx = SessionContext::new();
        ctx.register_udaf(exact_percentile());
        let sql = format!("SELECT exact_percentile(CAST(v AS DOUBLE), {percent}) FROM (VALUES {values}) AS t(v)");
        let batches = ctx.sql(&sql).await.expect("plan").collect().await.expect("run");
        let column = batches[0].column(0).as_primitive::<Float64Type>();
        column.is_valid(0).then(|| column.value(0))
    }

    #[tokio::test]
    async fn interpolates_between_the_closest_ranks() {
        // Sorted 1, 2, 4, 10: h = 3 × 0.9 = 2.7 → 4 + 0.7 × 6 = 8.2; the median h = 1.5 → 2 + 0.5 × 2 = 3.
        assert_eq!(percentile("(10), (1), (4), (2)", 90).await, Some(4.0 + 0.7 * 6.0));
        assert_eq!(percentile("(10), (1), (4), (2)", 50).await, Some(3.0));
        assert_eq!(percentile("(7)", 90).await, Some(7.0));
    }

    #[tokio::test]
    async fn skips_nulls_and_gives_null_without_values() {
        assert_eq!(percentile("(NULL), (5), (NULL), (1)", 50).await, Some(3.0));
        assert_eq!(percentile("(CAST(NULL AS DOUBLE))", 50).await, None);
    }

    #[tokio::test]
    async fn refuses_a_percent_outside_0_to_100() {
        let ctx = SessionContext::new();
        ctx.register_udaf(exact_percentile());
        let result = ctx.sql("SELECT exact_percentile(CAST(v AS DOUBLE), 150) FROM (VALUES (1)) AS t(v)").await;
        let err = match result {
            Ok(frame) => frame.collect().await.expect_err("refused").to_string(),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("0 to 100"), "{err}");
    }
}
