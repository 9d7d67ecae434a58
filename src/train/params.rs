//! Hyper-parameters of a fit: what a caller may ask for, and the validated values a fit runs with.
//!
//! [`FitSettings`] is what arrives from a request or the command line: every field optional.
//! [`FitSettings::validate`] picks the solver, fills in its defaults, draws a seed when none was
//! given, and rejects out-of-range values naming the field, so no fit ever sees a bad value.

use serde::{Deserialize, Serialize};

use super::{TrainError, Weights};

/// Keras's `Model.fit` default.
pub const DEFAULT_EPOCHS: usize = 500;
/// Keras's `Model.fit` default.
pub const DEFAULT_BATCH_SIZE: usize = 32;
/// The largest epoch count accepted; a guard against requests that would run for days.
pub const MAX_EPOCHS: usize = 1_000_000;

/// How the weights are found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Solver {
    /// Adam on the raw columns, exactly as the original Keras model trains.
    #[default]
    Adam,
    /// Adam on standardized columns with a learning rate that halves on plateaus and early
    /// stopping; converges to the least-squares optimum.
    AdamStandardized,
    /// The exact least-squares solution.
    LeastSquares,
}

impl Solver {
    pub const NAMES: [&str; 3] = ["adam", "adam-standardized", "least-squares"];
}

/// Requested settings; `None` means the solver's default (or a random seed).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitSettings {
    pub solver: Option<Solver>,
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub learning_rate: Option<f64>,
    pub beta_1: Option<f64>,
    pub beta_2: Option<f64>,
    pub epsilon: Option<f64>,
    pub shuffle: Option<bool>,
    pub seed: Option<u64>,
    pub initial: Option<InitialWeights>,
    pub patience: Option<usize>,
}

/// Explicit starting weights, instead of Keras's glorot-uniform kernel and zero bias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitialWeights {
    pub kernel: Vec<f64>,
    pub bias: f64,
}

/// Validated settings of one fit, tagged by solver, exactly as the fit runs with them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "solver", rename_all = "kebab-case")]
pub enum FitParams {
    Adam(AdamParams),
    AdamStandardized(AdamParams),
    LeastSquares,
}

/// Validated Adam settings (the seed included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdamParams {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
    pub shuffle: bool,
    pub seed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<InitialWeights>,
    /// Epochs without improvement before the learning rate halves; after
    /// [`super::fit::MAX_HALVINGS`] halvings the fit stops. `None` runs every epoch, as Keras.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
}

/// Defaults of one Adam-based solver.
struct AdamDefaults {
    epochs: usize,
    learning_rate: f64,
    patience: Option<usize>,
}

impl FitSettings {
    /// Checks every value for a model with `features` inputs and fills in the solver's defaults.
    pub fn validate(self, features: usize) -> Result<FitParams, TrainError> {
        match self.solver.unwrap_or_default() {
            Solver::Adam => {
                let defaults = AdamDefaults { epochs: DEFAULT_EPOCHS, learning_rate: 0.001, patience: None };
                self.validate_adam(features, defaults).map(FitParams::Adam)
            }
            Solver::AdamStandardized => {
                let defaults = AdamDefaults { epochs: 10_000, learning_rate: 0.01, patience: Some(20) };
                self.validate_adam(features, defaults).map(FitParams::AdamStandardized)
            }
            Solver::LeastSquares => self.validate_least_squares(),
        }
    }

    fn validate_adam(self, features: usize, defaults: AdamDefaults) -> Result<AdamParams, TrainError> {
        let epochs = self.epochs.unwrap_or(defaults.epochs);
        if !(1..=MAX_EPOCHS).contains(&epochs) {
            return Err(invalid("epochs", format!("must be between 1 and {MAX_EPOCHS}")));
        }
        let batch_size = self.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        if batch_size == 0 {
            return Err(invalid("batch_size", "must be at least 1"));
        }
        let learning_rate = self.learning_rate.unwrap_or(defaults.learning_rate);
        if !(learning_rate.is_finite() && learning_rate > 0.0) {
            return Err(invalid("learning_rate", "must be a positive number"));
        }
        let beta_1 = check_beta("beta_1", self.beta_1.unwrap_or(0.9))?;
        let beta_2 = check_beta("beta_2", self.beta_2.unwrap_or(0.999))?;
        let epsilon = self.epsilon.unwrap_or(1e-7);
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(invalid("epsilon", "must be a positive number"));
        }
        if let Some(initial) = &self.initial {
            check_initial(initial, features)?;
        }
        let patience = self.patience.or(defaults.patience);
        if patience == Some(0) {
            return Err(invalid("patience", "must be at least 1"));
        }
        Ok(AdamParams {
            epochs,
            batch_size,
            learning_rate,
            beta_1,
            beta_2,
            epsilon,
            shuffle: self.shuffle.unwrap_or(true),
            seed: self.seed.unwrap_or_else(random_seed),
            initial: self.initial,
            patience,
        })
    }

    /// The exact solver has no hyper-parameters; any given would silently mean nothing.
    fn validate_least_squares(self) -> Result<FitParams, TrainError> {
        let given = [
            ("epochs", self.epochs.is_some()),
            ("batch_size", self.batch_size.is_some()),
            ("learning_rate", self.learning_rate.is_some()),
            ("beta_1", self.beta_1.is_some()),
            ("beta_2", self.beta_2.is_some()),
            ("epsilon", self.epsilon.is_some()),
            ("shuffle", self.shuffle.is_some()),
            ("seed", self.seed.is_some()),
            ("initial", self.initial.is_some()),
            ("patience", self.patience.is_some()),
        ];
        match given.iter().find(|(_, is_given)| *is_given) {
            Some((field, _)) => Err(invalid(field, "is not used by the least-squares solver")),
            None => Ok(FitParams::LeastSquares),
        }
    }
}

impl FitParams {
    pub fn solver(&self) -> Solver {
        match self {
            FitParams::Adam(_) => Solver::Adam,
            FitParams::AdamStandardized(_) => Solver::AdamStandardized,
            FitParams::LeastSquares => Solver::LeastSquares,
        }
    }

    /// The most epochs the fit may run (0 for the exact solver).
    pub fn epochs(&self) -> usize {
        match self {
            FitParams::Adam(adam) | FitParams::AdamStandardized(adam) => adam.epochs,
            FitParams::LeastSquares => 0,
        }
    }

    /// Explicit starting weights, if the caller gave them.
    pub fn initial(&self) -> Option<&InitialWeights> {
        match self {
            FitParams::Adam(adam) | FitParams::AdamStandardized(adam) => adam.initial.as_ref(),
            FitParams::LeastSquares => None,
        }
    }
}

impl From<&InitialWeights> for Weights {
    fn from(initial: &InitialWeights) -> Self {
        Weights::new(initial.kernel.clone().into(), initial.bias)
    }
}

/// A random seed below 2^53, so that it survives a round trip through JavaScript's numbers.
fn random_seed() -> u64 {
    rand::random::<u64>() >> 11
}

fn check_beta(field: &'static str, value: f64) -> Result<f64, TrainError> {
    if (0.0..1.0).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(field, "must be at least 0 and less than 1"))
    }
}

fn check_initial(initial: &InitialWeights, features: usize) -> Result<(), TrainError> {
    if initial.kernel.len() != features {
        return Err(invalid(
            "initial.kernel",
            format!("has {} weights; the model has {features} features", initial.kernel.len()),
        ));
    }
    if !initial.kernel.iter().all(|w| w.is_finite()) {
        return Err(invalid("initial.kernel", "must hold finite numbers"));
    }
    if !initial.bias.is_finite() {
        return Err(invalid("initial.bias", "must be a finite number"));
    }
    Ok(())
}

fn invalid(field: &'static str, reason: impl Into<String>) -> TrainError {
    TrainError::InvalidParameter { field, reason: reason.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adam(settings: FitSettings) -> AdamParams {
        match settings.validate(1).unwrap() {
            FitParams::Adam(params) | FitParams::AdamStandardized(params) => params,
            FitParams::LeastSquares => panic!("expected an Adam solver"),
        }
    }

    #[test]
    fn defaults_are_keras_defaults_and_a_seed_is_drawn() {
        let params = adam(FitSettings::default());
        assert_eq!(params.epochs, 500);
        assert_eq!(params.batch_size, 32);
        assert_eq!(params.learning_rate, 0.001);
        assert_eq!((params.beta_1, params.beta_2, params.epsilon), (0.9, 0.999, 1e-7));
        assert!(params.shuffle);
        assert_eq!(params.patience, None);
        let other = adam(FitSettings::default());
        assert_ne!(params.seed, other.seed, "two unseeded fits drew the same seed");
        assert!(params.seed < 1 << 53 && other.seed < 1 << 53, "seeds are exact in JavaScript");
    }

    #[test]
    fn the_standardized_solver_has_its_own_defaults() {
        let params = adam(FitSettings { solver: Some(Solver::AdamStandardized), ..Default::default() });
        assert_eq!((params.epochs, params.learning_rate, params.patience), (10_000, 0.01, Some(20)));
    }

    #[test]
    fn least_squares_rejects_adam_settings() {
        let settings = FitSettings { solver: Some(Solver::LeastSquares), ..Default::default() };
        assert_eq!(settings.validate(2).unwrap(), FitParams::LeastSquares);
        let settings =
            FitSettings { solver: Some(Solver::LeastSquares), epochs: Some(5), ..Default::default() };
        assert!(matches!(settings.validate(2), Err(TrainError::InvalidParameter { field: "epochs", .. })));
    }

    #[test]
    fn each_bad_value_names_its_field() {
        let cases: Vec<(FitSettings, &str)> = vec![
            (FitSettings { epochs: Some(0), ..Default::default() }, "epochs"),
            (FitSettings { batch_size: Some(0), ..Default::default() }, "batch_size"),
            (FitSettings { learning_rate: Some(-1.0), ..Default::default() }, "learning_rate"),
            (FitSettings { beta_1: Some(1.0), ..Default::default() }, "beta_1"),
            (FitSettings { beta_2: Some(-0.1), ..Default::default() }, "beta_2"),
            (FitSettings { epsilon: Some(0.0), ..Default::default() }, "epsilon"),
            (FitSettings { patience: Some(0), ..Default::default() }, "patience"),
            (
                FitSettings {
                    initial: Some(InitialWeights { kernel: vec![1.0, 2.0], bias: 0.0 }),
                    ..Default::default()
                },
                "initial.kernel",
            ),
        ];
        for (settings, field) in cases {
            match settings.validate(1) {
                Err(TrainError::InvalidParameter { field: got, .. }) => assert_eq!(got, field),
                other => panic!("expected {field} to be rejected, got {other:?}"),
            }
        }
    }
}
