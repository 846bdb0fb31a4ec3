//! The forecasting method, on plain monthly series: the model (augurs' MSTL with AutoETS on the log of the
//! series), the seasonal-naive benchmark, and the rolling-origin backtest that compares them.
//!
//! **The model.** The series (monthly applications, leading zero months dropped, values floored at
//! [`FLOOR`]) is log-transformed; MSTL removes the 12-month season found by STL; AutoETS chooses the
//! non-seasonal exponential-smoothing model (error, trend, damping) with the lowest AICc for the
//! seasonally adjusted series; its forecast is reseasonalised and transformed back. The log makes the season
//! and the errors proportional to the level (a surge widens the intervals in proportion), and keeps the
//! forecast and its intervals positive. Prediction intervals are the ETS model's analytic ones.
//!
//! **The benchmark.** Seasonal naive: each month as the same month a year before.
//!
//! **The backtest.** Each of the last [`BACKTEST_ORIGINS`] months is an origin: both methods are trained on
//! the months before it and forecast up to [`HORIZON`] months, and every forecast month that is already
//! known is scored. MASE divides an absolute error by the mean absolute error of the seasonal-naive
//! forecast within the training months (Hyndman and Koehler 2006), so below 1 means better than the
//! benchmark did in sample; MAPE is the mean of |error| ÷ actual over months with applications, as a
//! fraction.

use augurs::ets::AutoETS;
use augurs::forecaster::Forecaster;
use augurs::forecaster::transforms::Log;
use augurs::mstl::MSTLModel;

/// Months in a season.
pub const SEASON: usize = 12;
/// Months forecast after the last complete month.
pub const HORIZON: usize = 12;
/// Origins of the rolling-origin backtest: the last this many months.
pub const BACKTEST_ORIGINS: usize = 24;
/// Fewest months (from the first month with applications) a model is trained on: two seasons.
pub const MIN_TRAINING_MONTHS: usize = 2 * SEASON;
/// Months with fewer applications count as this many before the log transform (log 0 is undefined).
pub const FLOOR: f64 = 0.5;
/// The model's name in the marts.
pub const MODEL: &str = "MSTL(12) + AutoETS, log";

/// Errors of the forecasting library.
#[derive(Debug, thiserror::Error)]
#[error("forecasting a series of {months} months: {message}")]
pub struct ModelError {
    /// Length of the training series.
    pub months: usize,
    /// The library's error.
    pub message: String,
}

/// A forecast of the next [`HORIZON`] months with 80 % and 95 % prediction intervals.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Point forecasts, one per month ahead.
    pub point: Vec<f64>,
    /// Lower and upper bounds of the 80 % intervals.
    pub lower_80: Vec<f64>,
    /// Upper bounds of the 80 % intervals.
    pub upper_80: Vec<f64>,
    /// Lower bounds of the 95 % intervals.
    pub lower_95: Vec<f64>,
    /// Upper bounds of the 95 % intervals.
    pub upper_95: Vec<f64>,
}

/// The backtest's accuracy at one horizon.
#[derive(Debug, Clone, PartialEq)]
pub struct Accuracy {
    /// Months ahead (1 = the month after the origin).
    pub horizon: usize,
    /// Forecasts scored at this horizon.
    pub origins: usize,
    /// The model's mean absolute percentage error (fraction; `None` when no scored month had applications).
    pub mape: Option<f64>,
    /// The model's mean absolute scaled error (`None` when the training series never changed year on year).
    pub mase: Option<f64>,
    /// Seasonal naive's MAPE.
    pub naive_mape: Option<f64>,
    /// Seasonal naive's MASE.
    pub naive_mase: Option<f64>,
}

/// The series from its first month with applications (zeros before it are months before the permit type
/// existed, not months without demand).
fn active(series: &[f64]) -> &[f64] {
    let start = series.iter().position(|v| *v > 0.0).unwrap_or(series.len());
    &series[start..]
}

fn fit(train: &[f64]) -> Result<Forecaster<MSTLModel<augurs::ets::trend::AutoETSTrendModel>>, ModelError> {
    let error = |e: &dyn std::fmt::Display| ModelError { months: train.len(), message: e.to_string() };
    let floored: Vec<f64> = train.iter().map(|v| v.max(FLOOR)).collect();
    let model = MSTLModel::new(vec![SEASON], AutoETS::non_seasonal().into_trend_model());
    let mut forecaster = Forecaster::new(model).with_transformers(vec![Box::new(Log::new())]);
    forecaster.fit(floored.as_slice()).map_err(|e| error(&e))?;
    Ok(forecaster)
}

/// The model's forecast of the [`HORIZON`] months after `series` (`None`: fewer than
/// [`MIN_TRAINING_MONTHS`] months since the first month with applications).
pub fn forecast(series: &[f64]) -> Result<Option<Forecast>, ModelError> {
    let train = active(series);
    if train.len() < MIN_TRAINING_MONTHS {
        return Ok(None);
    }
    let fitted = fit(train)?;
    let error = |e: &dyn std::fmt::Display| ModelError { months: train.len(), message: e.to_string() };
    let at = |level: f64| -> Result<(Vec<f64>, Vec<f64>, Vec<f64>), ModelError> {
        let predicted = fitted.predict(HORIZON, level).map_err(|e| error(&e))?;
        let intervals = predicted.intervals.ok_or_else(|| error(&"the model gave no prediction intervals"))?;
        Ok((predicted.point, intervals.lower, intervals.upper))
    };
    let (point, lower_80, upper_80) = at(0.8)?;
    let (_, lower_95, upper_95) = at(0.95)?;
    if point.iter().chain(&lower_95).chain(&upper_95).any(|v| !v.is_finite()) {
        return Err(error(&"the model's forecast is not finite"));
    }
    Ok(Some(Forecast { point, lower_80, upper_80, lower_95, upper_95 }))
}

/// Seasonal naive: the same month a year before the forecast month, repeated for longer horizons.
fn seasonal_naive(train: &[f64], horizon: usize) -> f64 {
    train[train.len() - SEASON + (horizon - 1) % SEASON]
}

/// Mean absolute error of seasonal naive within `train` (the MASE scale; `None` when it is 0).
fn naive_scale(train: &[f64]) -> Option<f64> {
    let errors: Vec<f64> = train.windows(SEASON + 1).map(|w| (w[SEASON] - w[0]).abs()).collect();
    let mean = errors.iter().sum::<f64>() / errors.len() as f64;
    (mean > 0.0).then_some(mean)
}

#[derive(Default)]
struct Sums {
    scaled: f64,
    scaled_n: usize,
    percentage: f64,
    percentage_n: usize,
}

impl Sums {
    fn add(&mut self, forecast: f64, actual: f64, scale: Option<f64>) {
        if let Some(scale) = scale {
            self.scaled += (forecast - actual).abs() / scale;
            self.scaled_n += 1;
        }
        if actual > 0.0 {
            self.percentage += (forecast - actual).abs() / actual;
            self.percentage_n += 1;
        }
    }

    fn mase(&self) -> Option<f64> {
        (self.scaled_n > 0).then(|| self.scaled / self.scaled_n as f64)
    }

    fn mape(&self) -> Option<f64> {
        (self.percentage_n > 0).then(|| self.percentage / self.percentage_n as f64)
    }
}

/// The rolling-origin backtest of `series` (see the module documentation): one row per horizon that was
/// scored at least once; empty when no origin leaves [`MIN_TRAINING_MONTHS`] of training.
pub fn backtest(series: &[f64]) -> Result<Vec<Accuracy>, ModelError> {
    let series = active(series);
    let n = series.len();
    let first_origin = n.saturating_sub(BACKTEST_ORIGINS).max(MIN_TRAINING_MONTHS);
    let mut model = (0..HORIZON).map(|_| Sums::default()).collect::<Vec<_>>();
    let mut naive = (0..HORIZON).map(|_| Sums::default()).collect::<Vec<_>>();
    let mut origins = [0usize; HORIZON];
    for origin in first_origin..n {
        let train = &series[..origin];
        let scale = naive_scale(train);
        let fitted = fit(train)?;
        let ahead = HORIZON.min(n - origin);
        let predicted =
            fitted.predict(ahead, None).map_err(|e| ModelError { months: train.len(), message: e.to_string() })?;
        for h in 1..=ahead {
            let actual = series[origin + h - 1];
            model[h - 1].add(predicted.point[h - 1], actual, scale);
            naive[h - 1].add(seasonal_naive(train, h), actual, scale);
            origins[h - 1] += 1;
        }
    }
    Ok((1..=HORIZON)
        .filter(|h| origins[h - 1] > 0)
        .map(|h| Accuracy {
            horizon: h,
            origins: origins[h - 1],
            mape: model[h - 1].mape(),
            mase: model[h - 1].mase(),
            naive_mape: naive[h - 1].mape(),
            naive_mase: naive[h - 1].mase(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEASON_WEIGHTS: [f64; 12] = [1.0, 1.0, 1.1, 1.05, 1.05, 1.0, 0.8, 0.9, 1.05, 1.1, 1.05, 0.9];

    /// Monthly counts with a 4 % yearly trend, the season above and deterministic noise of about ±3 %.
    fn seasonal_series(years: usize, level: f64) -> Vec<f64> {
        (0..years * 12)
            .map(|i| {
                let trend = level * (1.0 + 0.04 * (i / 12) as f64);
                let noise = 1.0 + 0.03 * ((i * 7919 % 13) as f64 / 6.0 - 1.0);
                (trend * SEASON_WEIGHTS[i % 12] * noise).round()
            })
            .collect()
    }

    #[test]
    fn forecast_is_twelve_months_with_nested_intervals_that_widen() {
        let forecast = forecast(&seasonal_series(8, 1_000.0)).expect("fits").expect("enough history");
        assert_eq!(forecast.point.len(), HORIZON);
        for h in 0..HORIZON {
            assert!(forecast.lower_95[h] <= forecast.lower_80[h], "h={h}: {forecast:?}");
            assert!(forecast.lower_80[h] <= forecast.point[h] && forecast.point[h] <= forecast.upper_80[h]);
            assert!(forecast.upper_80[h] <= forecast.upper_95[h]);
            assert!(forecast.lower_95[h] > 0.0);
        }
        // On the log scale, the interval widens with every month ahead.
        let log_width = |h: usize| forecast.upper_95[h].ln() - forecast.lower_95[h].ln();
        for h in 1..HORIZON {
            assert!(log_width(h) >= log_width(h - 1) - 1e-9, "h={h}: {} < {}", log_width(h), log_width(h - 1));
        }
        assert!(log_width(HORIZON - 1) > log_width(0));
    }

    #[test]
    fn forecast_is_deterministic() {
        let series = seasonal_series(6, 300.0);
        assert_eq!(forecast(&series).expect("fits"), forecast(&series).expect("fits"));
        assert_eq!(backtest(&series).expect("runs"), backtest(&series).expect("runs"));
    }

    #[test]
    fn forecast_follows_the_season() {
        let forecast = forecast(&seasonal_series(8, 1_000.0)).expect("fits").expect("enough history");
        // The series ends in December: the forecast's July (index 6) is its low month, as in every year.
        let lowest = (0..HORIZON).min_by(|a, b| forecast.point[*a].total_cmp(&forecast.point[*b]));
        assert_eq!(lowest, Some(6), "{:?}", forecast.point);
    }

    #[test]
    fn a_shock_in_the_history_widens_the_intervals() {
        let calm = seasonal_series(8, 1_000.0);
        let mut shocked = calm.clone();
        // A surge over seven months of the sixth year, as in 2015 or 2022.
        for (i, factor) in [(62, 2.0), (63, 4.0), (64, 6.0), (65, 4.0), (66, 2.5), (67, 1.5), (68, 1.2)] {
            shocked[i] *= factor;
        }
        let relative_width = |series: &[f64]| {
            let f = forecast(series).expect("fits").expect("enough history");
            (f.upper_80[0] - f.lower_80[0]) / f.point[0]
        };
        let (calm, shocked) = (relative_width(&calm), relative_width(&shocked));
        assert!(shocked > 1.5 * calm, "80 % interval width relative to the forecast: calm {calm}, shocked {shocked}");
    }

    #[test]
    fn leading_months_without_applications_do_not_count_as_history() {
        let mut series = vec![0.0; 60];
        series.extend(seasonal_series(1, 500.0));
        assert_eq!(forecast(&series).expect("fits"), None, "one year since the first application is too short");
        assert!(backtest(&series).expect("runs").is_empty());
    }

    #[test]
    fn backtest_scores_every_horizon_and_beats_naive_on_a_trending_series() {
        let accuracy = backtest(&seasonal_series(8, 1_000.0)).expect("runs");
        assert_eq!(accuracy.iter().map(|a| a.horizon).collect::<Vec<_>>(), (1..=12).collect::<Vec<_>>());
        // 24 origins: horizon h is known for 24 - h + 1 of them.
        assert_eq!(accuracy[0].origins, 24);
        assert_eq!(accuracy[11].origins, 13);
        let mean = |f: fn(&Accuracy) -> Option<f64>| {
            accuracy.iter().map(|a| f(a).expect("scored")).sum::<f64>() / accuracy.len() as f64
        };
        let (model, naive) = (mean(|a| a.mase), mean(|a| a.naive_mase));
        assert!(model < naive, "MASE: model {model}, seasonal naive {naive}");
        assert!(mean(|a| a.mape) < 0.1);
    }

    #[test]
    fn seasonal_naive_repeats_last_years_months() {
        let train: Vec<f64> = (1..=24).map(f64::from).collect();
        assert_eq!(seasonal_naive(&train, 1), 13.0);
        assert_eq!(seasonal_naive(&train, 12), 24.0);
        assert_eq!(naive_scale(&train), Some(12.0));
        assert_eq!(naive_scale(&[5.0; 24]), None);
    }
}
