//! The Adam optimiser exactly as Keras implements it (`keras/src/optimizers/adam.py`).
//!
//! Keras adds epsilon to the square root of the *uncorrected* second moment and folds both
//! bias corrections into the step size ("epsilon hat"). Using the textbook formula instead
//! drifts measurably from recorded TensorFlow runs, so this module keeps Keras's form.

/// Adam state for a flat parameter vector (the kernel followed by the bias).
#[derive(Debug, Clone)]
pub struct Adam {
    learning_rate: f64,
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    /// `beta_1^t` and `beta_2^t` for the steps taken so far (Keras counts optimiser steps, that
    /// is batches, not epochs); kept as running products because `powi` per step dominated
    /// small batches.
    beta_1_power: f64,
    beta_2_power: f64,
}

impl Adam {
    pub fn new(len: usize, learning_rate: f64, beta_1: f64, beta_2: f64, epsilon: f64) -> Self {
        Self {
            learning_rate,
            beta_1,
            beta_2,
            epsilon,
            m: vec![0.0; len],
            v: vec![0.0; len],
            beta_1_power: 1.0,
            beta_2_power: 1.0,
        }
    }

    pub fn learning_rate(&self) -> f64 {
        self.learning_rate
    }

    /// Changes the step size for later steps, keeping the moments (as a Keras schedule does).
    pub fn set_learning_rate(&mut self, learning_rate: f64) {
        self.learning_rate = learning_rate;
    }

    /// Applies one update: `params -= alpha * m / (sqrt(v) + epsilon)` with
    /// `alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`.
    pub fn step(&mut self, params: &mut [f64], grad: &[f64]) {
        debug_assert_eq!(params.len(), self.m.len());
        debug_assert_eq!(grad.len(), self.m.len());
        self.beta_1_power *= self.beta_1;
        self.beta_2_power *= self.beta_2;
        let alpha = self.learning_rate * (1.0 - self.beta_2_power).sqrt() / (1.0 - self.beta_1_power);
        let (b1, b2, eps) = (self.beta_1, self.beta_2, self.epsilon);
        for (((p, &g), m), v) in params.iter_mut().zip(grad).zip(self.m.iter_mut()).zip(self.v.iter_mut()) {
            *m += (g - *m) * (1.0 - b1);
            *v += (g * g - *v) * (1.0 - b2);
            *p -= alpha * *m / (v.sqrt() + eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_each_parameter_by_about_the_learning_rate() {
        // t=1: m = 0.1 g, v = 0.001 g^2, alpha = lr * sqrt(0.001) / 0.1.
        // step = alpha * 0.1 g / (sqrt(0.001) |g| + eps) = lr * sign(g) * (1 - tiny).
        let mut adam = Adam::new(2, 0.001, 0.9, 0.999, 1e-7);
        let mut params = [1.0, -2.0];
        adam.step(&mut params, &[4.0, -0.5]);
        let expected_0 = 1.0 - 0.001 * 0.1 * 4.0 * 0.001f64.sqrt() / 0.1 / (0.001f64.sqrt() * 4.0 + 1e-7);
        let expected_1 = -2.0 + 0.001 * 0.1 * 0.5 * 0.001f64.sqrt() / 0.1 / (0.001f64.sqrt() * 0.5 + 1e-7);
        assert!((params[0] - expected_0).abs() < 1e-15, "{}", params[0]);
        assert!((params[1] - expected_1).abs() < 1e-15, "{}", params[1]);
        assert!((params[0] - 0.999).abs() < 1e-6);
    }

    #[test]
    fn second_step_uses_both_moments_and_the_step_count() {
        // Hand-computed: g1 = 2, g2 = 1, lr = 0.1, beta_1 = 0.5, beta_2 = 0.75, eps = 0.
        // After step 1: m = 1, v = 1, alpha1 = 0.1 * sqrt(0.25) / 0.5 = 0.1, p = 0 - 0.1 * 1 / 1 = -0.1
        // Step 2: m = 0.5*1 + 0.5*1 = 1, v = 0.75*1 + 0.25*1 = 1,
        //         alpha2 = 0.1 * sqrt(1 - 0.5625) / (1 - 0.25) = 0.1 * 0.6614378 / 0.75,
        //         p = -0.1 - alpha2 * 1 / 1.
        let mut adam = Adam::new(1, 0.1, 0.5, 0.75, 0.0);
        let mut p = [0.0];
        adam.step(&mut p, &[2.0]);
        assert!((p[0] + 0.1).abs() < 1e-15);
        adam.step(&mut p, &[1.0]);
        let alpha2 = 0.1 * (1.0f64 - 0.5625).sqrt() / 0.75;
        assert!((p[0] - (-0.1 - alpha2)).abs() < 1e-15, "{}", p[0]);
    }
}
