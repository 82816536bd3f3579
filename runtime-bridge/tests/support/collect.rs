//! An `OutputSink` that keeps everything a session delivers, for tests to read.

use std::sync::Mutex;

use remotemedia_runtime::{Output, OutputSink, RuntimeError};

#[derive(Default)]
pub struct Collect {
    pub outputs: Mutex<Vec<Output>>,
    pub errors: Mutex<Vec<RuntimeError>>,
    pub warnings: Mutex<Vec<RuntimeError>>,
}

impl OutputSink for Collect {
    fn output(&self, output: Output) {
        self.outputs.lock().unwrap().push(output);
    }
    fn error(&self, error: RuntimeError) {
        self.errors.lock().unwrap().push(error);
    }
    fn warning(&self, warning: RuntimeError) {
        self.warnings.lock().unwrap().push(warning);
    }
}
