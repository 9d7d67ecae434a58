//! A service state with the built-in dataset and one trained model, for tests and benchmarks
//! that call the router in process.

use std::ops::ControlFlow;
use std::path::Path;

use regserve::data::{DataDir, default_dataset};
use regserve::model::{Model, TrainSpec};
use regserve::settings::Limits;
use regserve::state::AppState;
use regserve::train::FitSettings;
use regserve::versions::ModelStore;

/// State kept in `dir`, serving a model trained for `epochs` epochs with seed 1.
pub fn trained_state(dir: &Path, epochs: usize) -> AppState {
    let store = DataDir::open(dir).unwrap();
    let models = ModelStore::open(store.clone(), 5).unwrap();
    let dataset = default_dataset();
    let selection = dataset.default_selection().clone();
    let params =
        FitSettings { epochs: Some(epochs), seed: Some(1), ..Default::default() }.validate(1).unwrap();
    let spec = TrainSpec { selection, params, warm_start: None, job: 1 };
    let model = Model::train(&dataset, spec, &mut |_, _| ControlFlow::Continue(())).unwrap();
    models.commit(model).unwrap();
    AppState::new(Limits::default(), store, dataset, models)
}
