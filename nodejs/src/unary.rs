//! A unary run (`executePipeline`, `executePipelineWithInput`): a fresh session of the
//! manifest takes every input on a libuv worker thread and drains; then every output goes to
//! JavaScript in order and the promise resolves with the metrics.

use napi::bindgen_prelude::{Array, AsyncTask, Unknown};
use napi::{Env, Task};
use napi_derive::napi;
use remotemedia_runtime::{NodeMetrics, Output, RuntimeData};

use crate::error::{Failure, guarded};
use crate::input::{InputError, tuple_to_data};
use crate::manifest::ManifestSource;
use crate::output::{Emit, Metrics, deliver_guarded};

pub struct Run {
    manifest: ManifestSource,
    /// Kept until the task is dropped, on the JavaScript thread: the references to the
    /// JavaScript memory the inputs lend are then released right there, not each routed back
    /// from the thread where a node let go of it.
    inputs: Vec<RuntimeData>,
    emit: Emit,
}

impl Task for Run {
    type Output = Result<(Vec<Output>, Vec<NodeMetrics>), Failure>;
    type JsValue = Metrics;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(guarded(|| {
            let graph = self.manifest.load()?;
            Ok(remotemedia_runtime::execute_unary_with_metrics(
                graph,
                self.inputs.iter().cloned(),
            )?)
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Metrics> {
        let (outputs, metrics) = output.map_err(|f| f.into_js(&env))?;
        deliver_guarded(&env, &self.emit, outputs.into_iter().map(Ok).collect())?;
        Ok(Metrics(metrics))
    }
}

/// Runs `inputs` (tagged by index.js) through a fresh session of `manifest` off the
/// JavaScript thread; hands every output to `emit`, in order, and resolves with the metrics.
/// Throws for a manifest argument or an input it cannot take (index.js makes that a
/// rejection).
#[napi(namespace = "internal", catch_unwind)]
pub fn run(
    env: Env,
    manifest: Unknown<'_>,
    inputs: Array<'_>,
    emit: Emit,
) -> napi::Result<AsyncTask<Run>> {
    let prepare = || {
        let manifest = ManifestSource::from_js(&env, manifest)?;
        let mut data = Vec::with_capacity(inputs.len() as usize);
        for i in 0..inputs.len() {
            let tuple: Option<Array<'_>> = inputs.get(i)?;
            let tuple = tuple.ok_or_else(|| InputError::Invalid("an input is missing".into()))?;
            data.push(tuple_to_data(&env, &tuple)?);
        }
        Ok(Run {
            manifest,
            inputs: data,
            emit,
        })
    };
    prepare()
        .map(AsyncTask::new)
        .map_err(|f: Failure| f.into_js(&env))
}
