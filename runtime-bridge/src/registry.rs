//! The node registry: node types by name and alias.

use std::sync::LazyLock;

use crate::node::NodeSpec;
use crate::nodes;
use crate::params::{closest, suggestion};

pub struct Registry {
    specs: Vec<&'static NodeSpec>,
}

static BUILTIN: LazyLock<Registry> = LazyLock::new(|| {
    let mut r = Registry::empty();
    nodes::register_builtin(&mut r);
    r
});

impl Registry {
    pub fn empty() -> Self {
        Self { specs: Vec::new() }
    }

    /// Every native node type of this crate.
    pub fn builtin() -> &'static Registry {
        &BUILTIN
    }

    pub fn register(&mut self, spec: &'static NodeSpec) {
        self.specs.push(spec);
    }

    pub fn get(&self, name: &str) -> Option<&'static NodeSpec> {
        self.specs
            .iter()
            .copied()
            .find(|s| s.node_type == name || s.aliases.contains(&name))
    }

    /// The error text for an unknown node type, with the closest known names.
    pub fn unknown_type_message(&self, name: &str) -> String {
        let names = self
            .specs
            .iter()
            .flat_map(|s| std::iter::once(s.node_type).chain(s.aliases.iter().copied()));
        format!(
            "unknown node_type {name:?}{}",
            suggestion(&closest(name, names))
        )
    }

    pub fn specs(&self) -> impl Iterator<Item = &'static NodeSpec> + '_ {
        self.specs.iter().copied()
    }
}
