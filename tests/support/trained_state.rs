//! A service state with the built-in dataset and one trained model, kept in memory, for tests
//! and benchmarks that call the router in process.

use std::ops::ControlFlow;
use std::sync::Arc;

use regserve::data::default_dataset;
use regserve::datasets::Datasets;
use regserve::model::{Model, TrainSpec};
use regserve::registry::{Reason, Registry};
use regserve::settings::Limits;
use regserve::state::AppState;
use regserve::storage::memory::MemoryStore;
use regserve::train::FitSettings;

/// State on `runtime`, serving a model trained for `epochs` epochs with seed 1.
pub fn trained_state(runtime: &tokio::runtime::Runtime, epochs: usize) -> AppState {
    runtime.block_on(async {
        let store: Arc<MemoryStore> = Arc::new(MemoryStore::new());
        let models = Registry::open(store.clone(), 5).await.unwrap();
        let dataset = default_dataset();
        let selection = dataset.default_selection().clone();
        let params =
            FitSettings { epochs: Some(epochs), seed: Some(1), ..Default::default() }.validate(1).unwrap();
        let spec = TrainSpec { selection, params, warm_start: None, job: 1 };
        let model = Model::train(&dataset, spec, &mut |_, _| ControlFlow::Continue(())).unwrap();
        models.commit(model, Some(Reason::Manual.into())).await.unwrap();
        AppState::new(Limits::default(), Datasets::open(store, Default::default()).await.unwrap(), models)
    })
}
