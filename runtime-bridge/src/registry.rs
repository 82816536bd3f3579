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

    /// Every node type name, in registration order.
    pub fn node_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.specs.iter().map(|s| s.node_type)
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

    /// The node reference as a Markdown table, generated from the param specs (the README
    /// carries it; a test keeps the two equal).
    pub fn markdown_reference(&self) -> String {
        let mut out =
            String::from("| node_type | what it does | params (type, default) |\n|---|---|---|\n");
        for spec in &self.specs {
            let name = if spec.aliases.is_empty() {
                format!("`{}`", spec.node_type)
            } else {
                let aliases: Vec<String> = spec.aliases.iter().map(|a| format!("`{a}`")).collect();
                format!("`{}` (alias {})", spec.node_type, aliases.join(", "))
            };
            let params: Vec<String> = spec
                .params
                .iter()
                .map(|p| format!("`{}` ({}, {}): {}", p.name, p.ty, p.default, p.doc))
                .collect();
            let params = if params.is_empty() {
                "none".to_string()
            } else {
                params.join("<br>")
            };
            out.push_str(&format!("| {name} | {} | {params} |\n", spec.doc));
        }
        out
    }

    /// One line per node type with its params, for gst-inspect-1.0.
    pub fn summary(&self) -> String {
        let lines: Vec<String> = self
            .specs
            .iter()
            .map(|s| {
                let params: Vec<&str> = s.params.iter().map(|p| p.name).collect();
                format!("{}({})", s.node_type, params.join(", "))
            })
            .collect();
        lines.join("; ")
    }
}
