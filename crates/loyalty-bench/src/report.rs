//! The run's figures: a readable table on stdout and `target/bench/summary.json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value, json};

/// One figure beside the limit it is compared with.
#[derive(Debug, Clone)]
pub struct Figure {
    pub key: &'static str,
    pub label: &'static str,
    pub value: f64,
    pub unit: &'static str,
}

#[derive(Debug, Default)]
pub struct Report {
    figures: Vec<Figure>,
    parameters: BTreeMap<&'static str, Value>,
}

impl Report {
    pub fn figure(
        &mut self,
        key: &'static str,
        label: &'static str,
        value: f64,
        unit: &'static str,
    ) {
        self.figures.push(Figure {
            key,
            label,
            value,
            unit,
        });
    }

    pub fn parameter(&mut self, key: &'static str, value: impl Into<Value>) {
        self.parameters.insert(key, value.into());
    }

    pub fn figures(&self) -> &[Figure] {
        &self.figures
    }

    pub fn print_table(&self) {
        let width = self
            .figures
            .iter()
            .map(|f| f.label.len())
            .max()
            .unwrap_or(0);
        println!();
        println!("{:width$}  {:>16}  unit", "figure", "value");
        println!("{:-<width$}  {:->16}  ----", "", "");
        for f in &self.figures {
            println!("{:width$}  {:>16.2}  {}", f.label, f.value, f.unit);
        }
        println!();
    }

    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        for f in &self.figures {
            map.insert(f.key.to_owned(), json!(f.value));
        }
        let parameters: Map<String, Value> = self
            .parameters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        map.insert("parameters".to_owned(), Value::Object(parameters));
        Value::Object(map)
    }

    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(&self.to_json()).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }
}
