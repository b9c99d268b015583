//! PM2 ecosystem files → tend manifest trees.
//!
//! [`import`] reads an ecosystem file (JSON, JSON5, a `module.exports = {…}` JavaScript file,
//! or YAML) the way PM2 7 reads it, and returns the tree tend would get from an equivalent
//! `tend.toml`: `{ services: { NAME: {…} } }`, every node carrying the line of the ecosystem
//! file it came from, so tend's validator reports its own errors at those lines.
//!
//! What tend does differently from PM2 is a warning naming the file, line and key; what
//! PM2 itself would refuse, and JavaScript code where the program to run is decided, are
//! errors. See docs/migrating.md for the mapping and the choices made.

mod app;
pub mod js;
mod keys;
mod values;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use super::{Diagnostic, Imported};
use crate::config::document::{self, Entry, Node, Value};
use js::{Js, JsValue, Member, Prop};

/// Import the ecosystem file at `path` whose content is `text`. `env_name` is PM2's
/// `--env NAME`: `env_NAME` (and `deploy.NAME.env`) are merged over `env`.
///
/// On failure, every error found (warnings are returned only with a success).
pub fn import(
    path: &Path,
    text: &str,
    env_name: Option<&str>,
) -> Result<Imported, Vec<Diagnostic>> {
    let mut diags = Diags::new(path);
    let root = match read(path, text, &mut diags) {
        Ok(root) => root,
        Err(()) => return Err(diags.finish_errors()),
    };
    let services = top_level(&root, env_name, &mut diags);
    if !diags.errors.is_empty() {
        return Err(diags.finish_errors());
    }
    let tree = Node::new(
        1,
        Value::Table(vec![Entry {
            key: "services".into(),
            line: services.line,
            value: services,
        }]),
    );
    Ok(Imported {
        tree,
        warnings: diags.finish_warnings(),
    })
}

/// Read the file into a JavaScript value tree, by extension (PM2 decides the same way).
fn read(path: &Path, text: &str, diags: &mut Diags) -> Result<Js, ()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let extension = name.rsplit_once('.').map_or("", |(_, ext)| ext);
    let result = match extension {
        "json" | "json5" => js::read_expression(text),
        "js" | "cjs" | "mjs" => js::read_module(text).map(|module| {
            for (line, message) in module.notes {
                diags.warn(line, "", message);
            }
            module.value
        }),
        "yml" | "yaml" => return read_yaml(text, diags),
        _ => {
            // Not a name PM2 knows: a bare value, or else a module.
            let first = text
                .trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
                .chars()
                .next();
            if matches!(first, Some('{' | '[')) {
                js::read_expression(text)
            } else {
                js::read_module(text).map(|module| module.value)
            }
        }
    };
    result.map_err(|e| diags.error(e.line, "", format!("cannot read the file: {}", e.message)))
}

/// YAML through tend's own parser (YAML 1.2, as js-yaml 4 that PM2 uses).
fn read_yaml(text: &str, diags: &mut Diags) -> Result<Js, ()> {
    match document::parse(text, document::Format::Yaml) {
        Ok(node) => Ok(from_node(&node)),
        Err(errors) => {
            for e in errors {
                diags.error(
                    e.line.unwrap_or(1),
                    "",
                    format!("cannot read the file: {}", e.message),
                );
            }
            Err(())
        }
    }
}

fn from_node(node: &Node) -> Js {
    let value = match &node.value {
        Value::Null => JsValue::Null,
        Value::Bool(b) => JsValue::Bool(*b),
        Value::Integer(i) => JsValue::Number(*i as f64),
        Value::Float(f) => JsValue::Number(*f),
        Value::String(s) => JsValue::String(s.clone()),
        Value::Array(items) => JsValue::Array(items.iter().map(from_node).collect()),
        Value::Table(entries) => JsValue::Object(
            entries
                .iter()
                .map(|e| {
                    Member::Prop(Prop {
                        key: e.key.clone(),
                        line: e.line,
                        value: from_node(&e.value),
                    })
                })
                .collect(),
        ),
    };
    Js {
        line: node.line,
        value,
    }
}

/// The apps of the file (`{apps: […]}`, `{pm2: […]}`, a bare array or one app) mapped to
/// the `services` table.
fn top_level(root: &Js, env_name: Option<&str>, diags: &mut Diags) -> Node {
    let mut services_line = root.line;
    // PM2: `config.apps || config.pm2 || config`, then a lone object is one app.
    let (apps, prefix): (&Js, &str) = match &root.value {
        JsValue::Object(members) => {
            let prop = |key: &str| {
                members.iter().rev().find_map(|m| match m {
                    Member::Prop(p) if p.key == key => Some(p),
                    _ => None,
                })
            };
            let chosen = ["apps", "pm2"]
                .into_iter()
                .find_map(|key| prop(key).filter(|p| values::truthy(&p.value)));
            match chosen {
                Some(p) => {
                    services_line = p.line;
                    other_top_level_keys(members, &p.key, diags);
                    (&p.value, p.key.as_str())
                }
                None => (root, ""),
            }
        }
        JsValue::Array(_) => (root, ""),
        JsValue::Code(code) => {
            diags.code_error(code.line, "", &code.what);
            return Node::new(root.line, Value::Table(Vec::new()));
        }
        _ => {
            diags.error(
                root.line,
                "",
                format!(
                    "expected an object with `apps` or an array of apps, found {}",
                    root.kind()
                ),
            );
            return Node::new(root.line, Value::Table(Vec::new()));
        }
    };

    let deploy_env = deploy_env(root, env_name);
    let mut ctx = app::Ctx {
        env_name,
        deploy_env,
        diags,
    };
    let mut mapped = Vec::new();
    match &apps.value {
        JsValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("{prefix}[{i}]");
                if let Some(service) = app::map_app(item, &path, &mut ctx) {
                    mapped.push(service);
                }
            }
        }
        JsValue::Object(_) => {
            if let Some(service) = app::map_app(apps, prefix, &mut ctx) {
                mapped.push(service);
            }
        }
        JsValue::Code(code) => ctx.diags.code_error(code.line, prefix, &code.what),
        _ => ctx.diags.error(
            apps.line,
            prefix,
            format!(
                "expected an array of apps or one app object, found {}",
                apps.kind()
            ),
        ),
    }
    let diags = ctx.diags;
    if diags.errors.is_empty() && mapped.is_empty() {
        diags.error(apps.line, prefix, "no apps to import");
    }
    Node::new(services_line, Value::Table(assemble(mapped, diags)))
}

/// `deploy.ENV.env`, which PM2 merges under the app's `env` for `--env ENV`.
fn deploy_env<'a>(root: &'a Js, env_name: Option<&str>) -> Option<&'a Js> {
    let env_name = env_name?;
    let field = |js: &'a Js, key: &str| -> Option<&'a Js> {
        let JsValue::Object(members) = &js.value else {
            return None;
        };
        members.iter().rev().find_map(|m| match m {
            Member::Prop(p) if p.key == key => Some(&p.value),
            _ => None,
        })
    };
    field(field(field(root, "deploy")?, env_name)?, "env")
}

/// Keys beside `apps`: `deploy` and `static` are PM2 features tend does not have.
fn other_top_level_keys(members: &[Member], apps_key: &str, diags: &mut Diags) {
    for member in members {
        match member {
            Member::Prop(p) if p.key == apps_key => {}
            Member::Prop(p) if p.key == "deploy" => diags.warn(
                p.line,
                "deploy",
                "tend does not deploy (PM2 runs git and ssh for `pm2 deploy`); ignored, apart from `deploy.ENV.env` with an env name",
            ),
            Member::Prop(p) if p.key == "static" => diags.warn(
                p.line,
                "static",
                "PM2's built-in static file server has no tend equivalent; run a web server as a service instead",
            ),
            Member::Prop(p) if p.key == "apps" || p.key == "pm2" => diags.warn(
                p.line,
                &p.key,
                format!("ignored: PM2 reads `{apps_key}` first"),
            ),
            Member::Prop(p) => {
                let known = ["apps".to_string(), "deploy".to_string(), "static".to_string()];
                let hint = keys::did_you_mean(&p.key, &known)
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                diags.warn(
                    p.line,
                    &p.key,
                    format!("not a PM2 ecosystem key; PM2 ignores it{hint}"),
                );
            }
            Member::Code(code) => diags.warn(
                code.line,
                "",
                format!("{}: the keys it adds are not imported; tend cannot evaluate JavaScript", code.what),
            ),
        }
    }
}

/// The `services` entries: unique names, and each PM2 namespace as a tend group.
fn assemble(mapped: Vec<app::Service>, diags: &mut Diags) -> Vec<Entry> {
    let mut names: Vec<String> = Vec::new();
    let mut services = Vec::new();
    for mut service in mapped {
        // PM2 runs two apps of one name side by side; tend names must be unique.
        if names.contains(&service.name) {
            let base = service.name.clone();
            let unique = (2..)
                .map(|n| format!("{base}-{n}"))
                .find(|candidate| !names.contains(candidate))
                .unwrap_or(base.clone());
            diags.warn(
                service.line,
                &service.path,
                format!("another app is already named `{base}`; imported as `{unique}` (tend names are unique; PM2 would run both under one name)"),
            );
            service.name = unique;
        }
        names.push(service.name.clone());
        services.push(service);
    }
    let mut entries = Vec::new();
    for mut service in services {
        if let Some((namespace, line, key)) = service.namespace.take() {
            if let Err(why) = app::check_name(&namespace) {
                diags.warn(
                    line,
                    &key,
                    format!("namespace not imported as a group: {why}"),
                );
            } else if names.contains(&namespace) {
                diags.warn(
                    line,
                    &key,
                    format!("namespace `{namespace}` is also a service name, which tend does not allow for a group; not imported"),
                );
            } else if let Value::Table(fields) = &mut service.table.value {
                fields.push(Entry {
                    key: "groups".into(),
                    line,
                    value: Node::new(
                        line,
                        Value::Array(vec![Node::new(line, Value::String(namespace))]),
                    ),
                });
            }
        }
        entries.push(Entry {
            key: service.name,
            line: service.line,
            value: service.table,
        });
    }
    entries
}

/// Errors and warnings, each at a line of the file.
pub(crate) struct Diags {
    file: PathBuf,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Diags {
    fn new(file: &Path) -> Diags {
        Diags {
            file: file.to_path_buf(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn diagnostic(&self, line: usize, key: &str, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line,
            key: key.to_string(),
            message,
        }
    }

    pub(crate) fn error(&mut self, line: usize, key: &str, message: impl Into<String>) {
        let d = self.diagnostic(line, key, message.into());
        self.errors.push(d);
    }

    pub(crate) fn warn(&mut self, line: usize, key: &str, message: impl Into<String>) {
        let d = self.diagnostic(line, key, message.into());
        self.warnings.push(d);
    }

    pub(crate) fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// JavaScript where a literal is required: the import fails.
    pub(crate) fn code_error(&mut self, line: usize, key: &str, what: &str) {
        let file = self.file.file_name().map_or_else(
            || "ecosystem.config.js".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        self.error(
            line,
            key,
            format!(
                "this is JavaScript code ({what}), not a literal; tend cannot evaluate it — replace it with a literal value, or import what Node evaluates: node -p 'JSON.stringify(require(\"./{file}\"), null, 2)' > ecosystem.json"
            ),
        );
    }

    /// JavaScript where a setting was: the setting is skipped.
    pub(crate) fn code_warning(&mut self, line: usize, key: &str, what: &str) {
        self.warn(
            line,
            key,
            format!("this is JavaScript code ({what}), not a literal; tend cannot evaluate it, so this setting is not imported — write a literal value"),
        );
    }

    fn sorted(mut list: Vec<Diagnostic>) -> Vec<Diagnostic> {
        // Stable: diagnostics on one line keep the order they were found in.
        list.sort_by_key(|d| d.line);
        list.dedup();
        list
    }

    fn finish_errors(self) -> Vec<Diagnostic> {
        Self::sorted(self.errors)
    }

    fn finish_warnings(self) -> Vec<Diagnostic> {
        Self::sorted(self.warnings)
    }
}
