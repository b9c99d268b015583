//! `reloadConfig`, `addProcessGroup` and `removeProcessGroup`: what `supervisorctl reread`,
//! `update`, `add` and `remove` call. A group is added or removed whole; the engine is
//! told the new set of services and refuses anything that would disturb a running one.

use std::collections::BTreeSet;

use super::codec::Value;
use super::methods::{Fault, fault};
use super::names::ProcessTable;
use super::{Config, Rpc};
use crate::api::AppState;

/// `[[added, changed, removed]]` group names against the configuration in force; the file
/// read becomes the one `addProcessGroup` takes groups from.
pub async fn reload_config(rpc: &Rpc) -> Result<Value, Fault> {
    let Some(reread) = &rpc.reread else {
        return Err(Fault::new(
            fault::CANT_REREAD,
            "this configuration cannot be re-read",
        ));
    };
    let fresh = reread().map_err(|e| Fault::new(fault::CANT_REREAD, e.to_string()))?;
    let mut configs = rpc.config.lock().await;
    // As `tend apply` reads it: a count set by `tend scale` is not a change of the file.
    let fresh = crate::api::scale::rebase(&configs.active, fresh);
    let old = ProcessTable::new(&configs.active.manifest, &configs.active.names);
    let new = ProcessTable::new(&fresh.manifest, &fresh.names);
    let old_groups: BTreeSet<&str> = old.groups().into_iter().collect();
    let new_groups: BTreeSet<&str> = new.groups().into_iter().collect();
    let names =
        |set: Vec<&str>| Value::Array(set.into_iter().map(|g| Value::String(g.into())).collect());
    let added: Vec<&str> = new_groups.difference(&old_groups).copied().collect();
    let removed: Vec<&str> = old_groups.difference(&new_groups).copied().collect();
    let changed: Vec<&str> = new_groups
        .intersection(&old_groups)
        .copied()
        .filter(|g| group_differs(&configs.active, &fresh, &old, &new, g))
        .collect();
    let answer = Value::Array(vec![Value::Array(vec![
        names(added),
        names(changed),
        names(removed),
    ])]);
    configs.pending = Some(fresh);
    Ok(answer)
}

/// Whether a group's processes or their services' specs differ between two configurations.
fn group_differs(
    old_config: &Config,
    new_config: &Config,
    old: &ProcessTable,
    new: &ProcessTable,
    group: &str,
) -> bool {
    let members = |table: &ProcessTable| -> Vec<(String, String)> {
        table
            .processes
            .iter()
            .filter(|p| p.group == group)
            .map(|p| (p.name.clone(), p.instance.clone()))
            .collect()
    };
    if members(old) != members(new) {
        return true;
    }
    services_of(old, group)
        .iter()
        .any(|service| old_config.manifest.service(service) != new_config.manifest.service(service))
}

fn services_of(table: &ProcessTable, group: &str) -> Vec<String> {
    // Processes are sorted by name, and two programs' names may interleave (p1, p15, p2).
    let services: BTreeSet<String> = table
        .processes
        .iter()
        .filter(|p| p.group == group)
        .map(|p| p.service.clone())
        .collect();
    services.into_iter().collect()
}

/// `getAllConfigInfo`: the configuration last read (by `reloadConfig`, else the one in
/// force), each process marked in use or not, as `supervisorctl avail` shows it.
pub async fn config_infos(rpc: &Rpc) -> Result<Value, Fault> {
    let configs = rpc.config.lock().await;
    let active = rpc.table();
    let read = match &configs.pending {
        Some(pending) => ProcessTable::new(&pending.manifest, &pending.names),
        None => (*active).clone(),
    };
    let infos = read
        .processes
        .iter()
        .map(|p| {
            let inuse = active
                .processes
                .iter()
                .any(|a| a.group == p.group && a.name == p.name);
            super::methods::config_info(p, inuse)
        })
        .collect();
    Ok(Value::Array(infos))
}

/// `supervisor.restart` (`supervisorctl reload`): supervisord re-executes itself; tend
/// stops every process, reads the file again, and starts what it says, in the background,
/// as supervisord answers before it restarts. A file that no longer reads is a fault and
/// nothing is touched.
pub async fn restart(state: &AppState, rpc: &Rpc) -> Result<Value, Fault> {
    let Some(reread) = &rpc.reread else {
        return Err(Fault::new(
            fault::CANT_REREAD,
            "this configuration cannot be re-read",
        ));
    };
    let fresh = reread().map_err(|e| Fault::new(fault::CANT_REREAD, e.to_string()))?;
    // Checked before anything is stopped: the engine would refuse the new set only after.
    if let Some(why) = state
        .engine
        .sockets()
        .refuse_change(&fresh.manifest.sockets)
    {
        return Err(Fault::new(fault::CANT_REREAD, why));
    }
    let state = state.clone();
    let rpc = state.rpc.clone();
    tokio::spawn(async move {
        let mut configs = rpc.config.lock().await;
        let _ = state.engine.stop(Vec::new()).await;
        let mut empty = configs.active.clone();
        empty.manifest.services.clear();
        empty.names.clear();
        if apply(&state, &mut configs.active, empty).await.is_err() {
            return;
        }
        let autostart: Vec<String> = fresh
            .manifest
            .services
            .iter()
            .filter(|s| s.autostart)
            .map(|s| s.name.clone())
            .collect();
        let mut next = configs.active.clone();
        next.manifest.services = fresh.manifest.services;
        next.manifest.sockets = fresh.manifest.sockets;
        next.names = fresh.names;
        configs.pending = None;
        if apply(&state, &mut configs.active, next).await.is_ok() && !autostart.is_empty() {
            drop(configs);
            let _ = state.engine.start(autostart).await;
        }
    });
    Ok(Value::Bool(true))
}

pub async fn add_group(state: &AppState, rpc: &Rpc, group: &str) -> Result<Value, Fault> {
    let mut configs = rpc.config.lock().await;
    if rpc.table().processes.iter().any(|p| p.group == group) {
        return Err(Fault::new(fault::ALREADY_ADDED, group));
    }
    let Some(pending) = &configs.pending else {
        return Err(Fault::new(fault::BAD_NAME, group));
    };
    let pending_table = ProcessTable::new(&pending.manifest, &pending.names);
    let services = services_of(&pending_table, group);
    if services.is_empty() {
        return Err(Fault::new(fault::BAD_NAME, group));
    }
    let mut next = configs.active.clone();
    // The sockets the added services name are the file's: the engine refuses them if they
    // are not the ones tend bound.
    next.manifest.sockets = pending.manifest.sockets.clone();
    for name in &services {
        let spec = pending
            .manifest
            .service(name)
            .expect("UNWRAP: the table lists the manifest's services");
        if next.manifest.service(name).is_some() {
            return Err(Fault::new(
                fault::FAILED,
                format!("service `{name}` is already supervised in another group"),
            ));
        }
        next.manifest
            .services
            .push(std::sync::Arc::new(spec.clone()));
    }
    next.names.extend(
        pending
            .names
            .iter()
            .filter(|n| {
                pending_table
                    .by_instance(&n.instance)
                    .is_some_and(|p| p.group == group)
            })
            .cloned(),
    );
    for spec in &next.manifest.services {
        if let Some(missing) = spec
            .depends_on
            .iter()
            .find(|d| next.manifest.service(&d.service).is_none())
        {
            return Err(Fault::new(
                fault::FAILED,
                format!(
                    "`{}` depends on `{}`, which is not added",
                    spec.name, missing.service
                ),
            ));
        }
    }
    apply(state, &mut configs.active, next).await?;
    // supervisord starts an added group's autostart processes.
    let autostart: Vec<String> = services
        .iter()
        .filter(|s| {
            configs
                .active
                .manifest
                .service(s)
                .is_some_and(|s| s.autostart)
        })
        .cloned()
        .collect();
    if !autostart.is_empty() {
        let engine = state.engine.clone();
        tokio::spawn(async move {
            let _ = engine.start(autostart).await;
        });
    }
    Ok(Value::Bool(true))
}

pub async fn remove_group(state: &AppState, rpc: &Rpc, group: &str) -> Result<Value, Fault> {
    let mut configs = rpc.config.lock().await;
    let table = rpc.table();
    let services = services_of(&table, group);
    if services.is_empty() {
        return Err(Fault::new(fault::BAD_NAME, group));
    }
    let statuses = state
        .engine
        .status(services.clone())
        .await
        .map_err(|_| Fault::new(fault::FAILED, "the engine is not answering"))?
        .map_err(|e| Fault::new(fault::BAD_NAME, e.0))?;
    if statuses
        .iter()
        .any(|s| !matches!(s.state, "stopped" | "exited" | "fatal"))
    {
        return Err(Fault::new(fault::STILL_RUNNING, group));
    }
    let mut next = configs.active.clone();
    next.manifest
        .services
        .retain(|s| !services.contains(&s.name));
    next.names.retain(|n| {
        table
            .by_instance(&n.instance)
            .is_none_or(|p| p.group != group)
    });
    if let Some(dependent) = next
        .manifest
        .services
        .iter()
        .find(|s| s.depends_on.iter().any(|d| services.contains(&d.service)))
    {
        return Err(Fault::new(
            fault::FAILED,
            format!(
                "`{}` depends on a service of group `{group}`",
                dependent.name
            ),
        ));
    }
    apply(state, &mut configs.active, next).await?;
    Ok(Value::Bool(true))
}

/// [`super::commit`], answering a refusal with supervisord's FAILED fault.
async fn apply(state: &AppState, active: &mut Config, next: Config) -> Result<(), Fault> {
    super::commit(state, active, next)
        .await
        .map_err(|e| Fault::new(fault::FAILED, e))
}
