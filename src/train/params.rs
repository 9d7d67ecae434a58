//! Hyper-parameters of a fit: what a caller may ask for, and the validated values a fit runs with.
//!
//! [`AdamSettings`] is what arrives from a request or the command line: every field optional.
//! [`AdamSettings::validate`] fills in the Keras defaults, draws a seed when none was given, and
//! rejects out-of-range values naming the field, so the fit loop never sees a bad value.

use serde::{Deserialize, Serialize};

use super::{TrainError, Weights};

/// Keras's `Model.fit` default.
pub const DEFAULT_EPOCHS: usize = 500;
/// Keras's `Model.fit` default.
pub const DEFAULT_BATCH_SIZE: usize = 32;
/// The largest epoch count accepted; a guard against requests that would run for days.
pub const MAX_EPOCHS: usize = 1_000_000;

/// Requested Adam settings; `None` means "the Keras default" (or a random seed).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamSettings {
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub learning_rate: Option<f64>,
    pub beta_1: Option<f64>,
    pub beta_2: Option<f64>,
    pub epsilon: Option<f64>,
    pub shuffle: Option<bool>,
    pub seed: Option<u64>,
    pub initial: Option<InitialWeights>,
}

/// Explicit starting weights, instead of Keras's glorot-uniform kernel and zero bias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitialWeights {
    pub kernel: Vec<f64>,
    pub bias: f64,
}

/// Validated Adam settings, exactly as a fit runs with them (the seed included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdamParams {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
    pub shuffle: bool,
    pub seed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial: Option<InitialWeights>,
}

impl AdamSettings {
    /// Checks every value for a model with `features` inputs and fills in defaults.
    pub fn validate(self, features: usize) -> Result<AdamParams, TrainError> {
        let epochs = self.epochs.unwrap_or(DEFAULT_EPOCHS);
        if !(1..=MAX_EPOCHS).contains(&epochs) {
            return Err(invalid("epochs", format!("must be between 1 and {MAX_EPOCHS}")));
        }
        let batch_size = self.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        if batch_size == 0 {
            return Err(invalid("batch_size", "must be at least 1"));
        }
        let learning_rate = self.learning_rate.unwrap_or(0.001);
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
        })
    }
}

impl AdamParams {
    /// The starting weights: the requested ones, or what Keras would draw from `rng`.
    pub fn initial_weights(&self, features: usize, rng: &mut impl rand::Rng) -> Weights {
        match &self.initial {
            Some(initial) => Weights::new(initial.kernel.clone().into(), initial.bias),
            None => Weights::glorot_uniform(features, rng),
        }
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

    #[test]
    fn defaults_are_keras_defaults_and_a_seed_is_drawn() {
        let params = AdamSettings::default().validate(1).unwrap();
        assert_eq!(params.epochs, 500);
        assert_eq!(params.batch_size, 32);
        assert_eq!(params.learning_rate, 0.001);
        assert_eq!((params.beta_1, params.beta_2, params.epsilon), (0.9, 0.999, 1e-7));
        assert!(params.shuffle);
        let other = AdamSettings::default().validate(1).unwrap();
        assert_ne!(params.seed, other.seed, "two unseeded fits drew the same seed");
        assert!(params.seed < 1 << 53 && other.seed < 1 << 53, "seeds are exact in JavaScript");
    }

    #[test]
    fn each_bad_value_names_its_field() {
        let cases: Vec<(AdamSettings, &str)> = vec![
            (AdamSettings { epochs: Some(0), ..Default::default() }, "epochs"),
            (AdamSettings { batch_size: Some(0), ..Default::default() }, "batch_size"),
            (AdamSettings { learning_rate: Some(-1.0), ..Default::default() }, "learning_rate"),
            (AdamSettings { beta_1: Some(1.0), ..Default::default() }, "beta_1"),
            (AdamSettings { beta_2: Some(-0.1), ..Default::default() }, "beta_2"),
            (AdamSettings { epsilon: Some(0.0), ..Default::default() }, "epsilon"),
            (
                AdamSettings {
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
