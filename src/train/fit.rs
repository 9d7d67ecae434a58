//! The fit loop, matching Keras's `Model.fit` for `Dense(1)` with Adam on MSE:
//! batches of `batch_size` in row order (the last, smaller batch kept), a fresh permutation
//! every epoch when shuffling, one optimiser step per batch, and an epoch loss that is the
//! sample-weighted mean of the batch losses computed before each batch's update.
//!
//! With `patience` set, the learning rate halves whenever the loss has not improved for that
//! many epochs, and the fit stops after [`MAX_HALVINGS`] halvings (Keras's `ReduceLROnPlateau`
//! followed by `EarlyStopping`); without it every epoch runs, as in Keras.

use std::ops::{ControlFlow, Range};

use ndarray::{ArrayView1, ArrayView2, CowArray, Ix1, Ix2};
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use super::{Adam, AdamParams, TrainError, Weights};

/// Halvings of the learning rate on plateaus before a fit with `patience` stops.
pub const MAX_HALVINGS: u32 = 12;
/// An epoch's loss must beat the best so far by this fraction to count as an improvement.
const MIN_RELATIVE_IMPROVEMENT: f64 = 1e-9;
/// About how many values (rows times columns) a fit reads between two [`Observer::checkpoint`]
/// calls: often enough that a cancellation, or a pause for more urgent work, takes effect within
/// some tens of microseconds, rarely enough that the calls cost nothing measurable.
const CHECKPOINT_VALUES: usize = 16 * 1024;
/// How many rows ahead of the one in use a shuffled epoch prefetches, so that the cache misses
/// of rows visited at random overlap instead of following one another.
const PREFETCH_ROWS: usize = 32;
/// How many swaps ahead the shuffle draws, so that their random accesses overlap.
const SHUFFLE_AHEAD: usize = 32;
/// Below this many rows the permutation and the rows stay in cache: prefetching would only add
/// work to a shuffled epoch.
const PREFETCH_FROM_ROWS: usize = 1 << 16;

/// Watches a fit: sees every epoch's loss and may stop it.
pub trait Observer {
    /// Called after every epoch (1-based); `Break` cancels the fit.
    fn epoch_end(&mut self, epoch: usize, loss: f64) -> ControlFlow<()>;

    /// Called often from inside a fit (every few thousand values read); `Break` cancels it. An
    /// implementation may also wait here, to leave the processor to more urgent work.
    fn checkpoint(&self) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

impl<F: FnMut(usize, f64) -> ControlFlow<()>> Observer for F {
    fn epoch_end(&mut self, epoch: usize, loss: f64) -> ControlFlow<()> {
        self(epoch, loss)
    }
}

/// The result of a completed fit.
#[derive(Debug, Clone)]
pub struct FitOutcome {
    /// The weights the fit started from (none for the exact solver).
    pub initial: Option<Weights>,
    pub weights: Weights,
    /// Loss per epoch, as Keras's `History.history["loss"]`; shorter than `epochs` when the fit
    /// stopped early.
    pub history: Vec<f64>,
    /// The least-squares optimum's MSE, when the fit found it on the way (the exact solver).
    pub optimum_mse: Option<f64>,
}

/// Fits `x` (row-major, one row per sample) to `y` with Adam.
///
/// The fit starts from `start`, or else from a glorot-uniform kernel drawn from the seeded
/// generator, which then draws the permutations, so a recorded seed reproduces a fit exactly.
pub fn fit_adam(
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
    params: &AdamParams,
    start: Option<Weights>,
    observer: &mut impl Observer,
) -> Result<FitOutcome, TrainError> {
    let mut run = AdamRun::new(x, y, params, start);
    let mut plateau = params.patience.map(Plateau::new);
    let mut history = Vec::with_capacity(params.epochs);
    for epoch in 1..=params.epochs {
        let loss = run.epoch(epoch, observer)?;
        history.push(loss);
        if observer.epoch_end(epoch, loss).is_break() {
            return Err(TrainError::Cancelled { epoch });
        }
        if plateau.as_mut().is_some_and(|plateau| plateau.stop_after(loss, &mut run.adam)) {
            break;
        }
    }
    Ok(FitOutcome { initial: Some(run.initial.clone()), weights: run.weights(), history, optimum_mse: None })
}

/// The state of an Adam fit between epochs.
pub struct AdamRun<'a> {
    x: CowArray<'a, f64, Ix2>,
    y: CowArray<'a, f64, Ix1>,
    params: &'a AdamParams,
    rng: ChaCha8Rng,
    initial: Weights,
    /// The kernel followed by the bias.
    theta: Vec<f64>,
    grad: Vec<f64>,
    adam: Adam,
    /// The current permutation of the rows (empty without shuffling); `u32` halves the memory
    /// traffic of shuffling and draws exactly the same permutation as `usize` would.
    order: Vec<u32>,
    /// With shuffling, the rows as `[x.., y]`: a row visited at random is then one cache miss
    /// instead of one per array.
    samples: Vec<f64>,
}

impl<'a> AdamRun<'a> {
    /// Prepares a fit; `x` is used in place when it is already row-major and contiguous.
    pub fn new(
        x: ArrayView2<'a, f64>,
        y: ArrayView1<'a, f64>,
        params: &'a AdamParams,
        start: Option<Weights>,
    ) -> Self {
        let (rows, features) = x.dim();
        assert!(rows < u32::MAX as usize, "fewer than 2^32 - 1 rows");
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        let initial = start.unwrap_or_else(|| Weights::glorot_uniform(features, &mut rng));
        let theta = initial.kernel().iter().copied().chain([initial.bias()]).collect();
        let adam =
            Adam::new(features + 1, params.learning_rate, params.beta_1, params.beta_2, params.epsilon);
        let order = if params.shuffle { identity(rows) } else { Vec::new() };
        let samples = if params.shuffle { interleave(x, y) } else { Vec::new() };
        Self {
            x: if x.is_standard_layout() { x.into() } else { x.as_standard_layout().into_owned().into() },
            y: if y.is_standard_layout() { y.into() } else { y.to_owned().into() },
            params,
            rng,
            initial,
            theta,
            grad: vec![0.0; features + 1],
            adam,
            order,
            samples,
        }
    }

    /// Runs epoch number `epoch` (for error reports) and returns its loss: the sample-weighted
    /// mean of the batch losses, each computed before its batch's update.
    pub fn epoch(&mut self, epoch: usize, observer: &impl Observer) -> Result<f64, TrainError> {
        if self.params.shuffle {
            shuffle(&mut self.order, &mut self.rng);
        }
        let (rows, features) = self.x.dim();
        let xs = self.x.as_slice().expect("standard layout is contiguous");
        let ys = self.y.as_slice().expect("standard layout is contiguous");
        let batch_size = self.params.batch_size;
        let checkpoint_batches = (CHECKPOINT_VALUES / batch_size.saturating_mul(features + 1)).max(1);
        let mut weighted_loss = 0.0;
        for (index, start) in (0..rows).step_by(batch_size).enumerate() {
            if index % checkpoint_batches == 0 && observer.checkpoint().is_break() {
                return Err(TrainError::Cancelled { epoch });
            }
            let end = (start + batch_size).min(rows);
            let rows = match self.params.shuffle {
                true => Rows::Shuffled { samples: &self.samples, order: &self.order },
                false => Rows::InOrder { xs, ys },
            };
            let (theta, grad) = (&self.theta, &mut self.grad);
            let loss = match features {
                1 => batch_gradient::<1>(&rows, start..end, theta, grad),
                2 => batch_gradient::<2>(&rows, start..end, theta, grad),
                4 => batch_gradient::<4>(&rows, start..end, theta, grad),
                _ => batch_gradient::<0>(&rows, start..end, theta, grad),
            };
            weighted_loss += loss * (end - start) as f64;
            self.adam.step(&mut self.theta, &self.grad);
        }
        let loss = weighted_loss / rows as f64;
        if !(loss.is_finite() && self.theta.iter().all(|p| p.is_finite())) {
            return Err(TrainError::Diverged { epoch });
        }
        Ok(loss)
    }

    /// The current weights.
    pub fn weights(&self) -> Weights {
        let (kernel, bias) = self.theta.split_at(self.theta.len() - 1);
        Weights::new(kernel.to_vec().into(), bias[0])
    }
}

/// The rows an epoch visits.
enum Rows<'a> {
    /// File order: features and targets read in place.
    InOrder { xs: &'a [f64], ys: &'a [f64] },
    /// A permutation of the interleaved `[x.., y]` rows.
    Shuffled { samples: &'a [f64], order: &'a [u32] },
}

/// Copies `x` and `y` into one row-major buffer of `[x.., y]` rows.
fn interleave(x: ArrayView2<f64>, y: ArrayView1<f64>) -> Vec<f64> {
    let mut samples = huge_page_vec(x.len() + y.len());
    for (row, &target) in x.rows().into_iter().zip(y) {
        samples.extend(row.iter().copied().chain([target]));
    }
    samples
}

/// The permutation `0..rows`.
fn identity(rows: usize) -> Vec<u32> {
    let mut order = huge_page_vec(rows);
    order.extend(0..rows as u32);
    order
}

/// An empty vector with room for `capacity` elements, whose memory the kernel is asked to back
/// with 2 MiB pages before it is touched: rows visited at random then cost no TLB miss each.
fn huge_page_vec<T>(capacity: usize) -> Vec<T> {
    let vec = Vec::with_capacity(capacity);
    #[cfg(target_os = "linux")]
    advise_huge_pages(vec.as_ptr() as usize, capacity * size_of::<T>());
    vec
}

/// Asks Linux for huge pages under the 2 MiB-aligned part of `len` bytes at `start`. The
/// advice is only a hint: without transparent huge pages it fails and nothing changes.
#[cfg(target_os = "linux")]
fn advise_huge_pages(start: usize, len: usize) {
    const HUGE_PAGE: usize = 2 << 20;
    let first = start.next_multiple_of(HUGE_PAGE);
    let end = (start + len) / HUGE_PAGE * HUGE_PAGE;
    if first < end {
        // SAFETY: this advice changes only how the kernel backs the pages, never their contents.
        unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) };
    }
}

/// Writes the MSE gradient of the rows at positions `batch` of the epoch's order into `grad`,
/// kernel first and bias last, and returns the batch's mean squared error. `D` is the feature
/// count when it is known at compile time (so the per-row loops unroll), 0 otherwise.
fn batch_gradient<const D: usize>(rows: &Rows, batch: Range<usize>, theta: &[f64], grad: &mut [f64]) -> f64 {
    let width = if D == 0 { theta.len() - 1 } else { D };
    let (kernel, bias) = theta.split_at(width);
    let mut sums = BatchSums::new(grad, width);
    match rows {
        Rows::InOrder { xs, ys } => {
            let features = xs[batch.start * width..batch.end * width].chunks_exact(width);
            for (row, &target) in features.zip(&ys[batch.clone()]) {
                sums.add(row, target, kernel, bias[0]);
            }
        }
        Rows::Shuffled { samples, order } => {
            let stride = width + 1;
            let ahead = |position: usize| (position + PREFETCH_ROWS).min(order.len());
            let upcoming = match order.len() < PREFETCH_FROM_ROWS {
                true => &[],
                false => &order[ahead(batch.start)..ahead(batch.end)],
            };
            for (k, &i) in order[batch.clone()].iter().enumerate() {
                if let Some(&next) = upcoming.get(k) {
                    // Both ends: a row may straddle two cache lines.
                    let row = samples.as_ptr().wrapping_add(next as usize * stride);
                    prefetch(row);
                    prefetch(row.wrapping_add(width));
                }
                let sample = &samples[i as usize * stride..(i as usize + 1) * stride];
                sums.add(&sample[..width], sample[width], kernel, bias[0]);
            }
        }
    }
    sums.finish(batch.len())
}

/// Shuffles `order` exactly as `rand`'s `SliceRandom::shuffle` does: Fisher-Yates upwards, each
/// position swapped with one drawn from those up to it by [`Partners`]. The partners of the
/// next [`SHUFFLE_AHEAD`] positions are drawn and prefetched before any of them is swapped: in a
/// permutation larger than the caches every swap is a cache miss, and these then overlap instead
/// of following one another. Smaller permutations are left to `SliceRandom::shuffle` itself.
fn shuffle(order: &mut [u32], rng: &mut ChaCha8Rng) {
    if order.len() < PREFETCH_FROM_ROWS {
        return order.shuffle(rng);
    }
    let mut draw = Partners::new();
    let mut partners = [0u32; SHUFFLE_AHEAD];
    for start in (0..order.len()).step_by(SHUFFLE_AHEAD) {
        let positions = start..(start + SHUFFLE_AHEAD).min(order.len());
        for partner in &mut partners[..positions.len()] {
            *partner = draw.next(rng);
            prefetch(order.as_ptr().wrapping_add(*partner as usize));
        }
        for (position, &partner) in positions.zip(&partners) {
            order.swap(position, partner as usize);
        }
    }
}

/// The swap partners of positions 0, 1, 2, .. of a Fisher-Yates shuffle: uniform in `0..=n` for
/// position `n`. As in `rand`'s `IncreasingUniform`, whose sequence this reproduces so that a
/// recorded seed keeps its permutations, several small ranges share one draw below the product
/// of their sizes.
struct Partners {
    position: u32,
    /// A uniform number below the product of the sizes of the `left` ranges still in it.
    chunk: u32,
    left: u8,
}

impl Partners {
    /// Position 0's partner is 0, without a draw.
    fn new() -> Self {
        Self { position: 0, chunk: 0, left: 1 }
    }

    fn next(&mut self, rng: &mut ChaCha8Rng) -> u32 {
        let size = self.position + 1;
        self.position = size;
        if self.left == 0 {
            if size > 1 << 16 {
                // No two sizes fit in one draw any more: the common case, kept short.
                return rng.random_range(..size);
            }
            let (bound, count) = chunk_bound(size);
            self.chunk = rng.random_range(..bound);
            self.left = count;
        }
        self.left -= 1;
        if self.left == 0 {
            return self.chunk;
        }
        let partner = self.chunk % size;
        self.chunk /= size;
        partner
    }
}

/// The largest product `size (size + 1) ..` of consecutive range sizes that fits in a `u32`, and
/// how many sizes it holds.
fn chunk_bound(size: u32) -> (u32, u8) {
    let (mut product, mut next) = (size, size + 1);
    while let Some(larger) = product.checked_mul(next) {
        product = larger;
        next += 1;
    }
    (product, (next - size) as u8)
}

/// Asks for the cache line at `address` to be loaded, without waiting for it.
#[inline(always)]
fn prefetch<T>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// Running sums of one batch: `dL/dw = (2/B) Σ (ŷ - y) x`, `dL/db = (2/B) Σ (ŷ - y)`, and the
/// squared errors. Rows are added in batch order, so results do not depend on the data layout.
struct BatchSums<'g> {
    grad_kernel: &'g mut [f64],
    grad_bias: &'g mut f64,
    squared: f64,
    residual_sum: f64,
}

impl<'g> BatchSums<'g> {
    fn new(grad: &'g mut [f64], features: usize) -> Self {
        let (grad_kernel, grad_bias) = grad.split_at_mut(features);
        grad_kernel.fill(0.0);
        Self { grad_kernel, grad_bias: &mut grad_bias[0], squared: 0.0, residual_sum: 0.0 }
    }

    #[inline(always)]
    fn add(&mut self, row: &[f64], target: f64, kernel: &[f64], bias: f64) {
        let prediction: f64 = row.iter().zip(kernel).map(|(x, w)| x * w).sum::<f64>() + bias;
        let residual = prediction - target;
        self.squared += residual * residual;
        self.residual_sum += residual;
        for (g, x) in self.grad_kernel.iter_mut().zip(row) {
            *g += residual * x;
        }
    }

    /// Scales the sums into the gradient and returns the batch's mean squared error.
    fn finish(self, rows: usize) -> f64 {
        let scale = 2.0 / rows as f64;
        self.grad_kernel.iter_mut().for_each(|g| *g *= scale);
        *self.grad_bias = self.residual_sum * scale;
        self.squared / rows as f64
    }
}

/// Learning-rate halving on plateaus, then early stopping.
struct Plateau {
    patience: usize,
    best: f64,
    epochs_without_improvement: usize,
    halvings: u32,
}

impl Plateau {
    fn new(patience: usize) -> Self {
        Self { patience, best: f64::INFINITY, epochs_without_improvement: 0, halvings: 0 }
    }

    /// Records an epoch's loss; halves the learning rate after `patience` epochs without
    /// improvement and says to stop once it has halved [`MAX_HALVINGS`] times.
    fn stop_after(&mut self, loss: f64, adam: &mut Adam) -> bool {
        if loss < self.best * (1.0 - MIN_RELATIVE_IMPROVEMENT) {
            self.best = loss;
            self.epochs_without_improvement = 0;
            return false;
        }
        self.epochs_without_improvement += 1;
        if self.epochs_without_improvement < self.patience {
            return false;
        }
        if self.halvings == MAX_HALVINGS {
            return true;
        }
        self.halvings += 1;
        self.epochs_without_improvement = 0;
        adam.set_learning_rate(adam.learning_rate() / 2.0);
        false
    }
}

#[cfg(test)]
mod tests;
