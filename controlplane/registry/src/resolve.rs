//! A chain request turned into the plugins to run, in order: the highest
//! usable version matching each request, then every `after` dependency
//! checked against what comes earlier in the chain.

use crate::discover::{Catalog, Plugin};
use semver::{Version, VersionReq};
use std::fmt;

/// One link of a chain request: a plugin and the versions it may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The plugin's name.
    pub name: String,
    /// The versions that will do.
    pub version: VersionReq,
}

/// Why a chain cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The same plugin twice.
    #[error(
        "{name} is in the chain twice (positions {first} and {second}); a chain runs each plugin once: remove one"
    )]
    Duplicate {
        /// The plugin.
        name: String,
        /// Its first position (1-based).
        first: usize,
        /// Its second position.
        second: usize,
    },
    /// No usable version at all.
    #[error("no usable plugin named {name} is installed{}", refused_hint(.refused))]
    NotFound {
        /// The plugin.
        name: String,
        /// Refused folders that look like versions of it, with why.
        refused: Vec<String>,
    },
    /// Usable versions, none matching.
    #[error(
        "no usable version of {name} matches {req} (usable: {}): install a matching version, or change the \
         chain's requirement",
        list(.available)
    )]
    NoMatch {
        /// The plugin.
        name: String,
        /// The chain's requirement.
        req: VersionReq,
        /// The usable versions.
        available: Vec<Version>,
    },
    /// A dependency that is not in the chain.
    #[error("{plugin} must come after {dependency} {req}, which is not in the chain: add {dependency} before it")]
    MissingDependency {
        /// The plugin with the dependency (`name version`).
        plugin: String,
        /// The plugin it must follow.
        dependency: String,
        /// The versions of it that will do.
        req: VersionReq,
    },
    /// A dependency placed after its dependent.
    #[error(
        "{plugin} must come after {dependency}, but the chain has {dependency} at position {dependency_at}, \
         after it (position {plugin_at}): move {dependency} before it"
    )]
    DependencyLater {
        /// The plugin with the dependency (`name version`).
        plugin: String,
        /// Its position (1-based).
        plugin_at: usize,
        /// The plugin it must follow.
        dependency: String,
        /// The dependency's position.
        dependency_at: usize,
    },
    /// A dependency earlier in the chain at a version that does not match.
    #[error(
        "{plugin} must come after {dependency} {req}, but the chain has {dependency} {found}: request a version of \
         {dependency} that matches {req}, or install a {plugin} that works with {found}"
    )]
    DependencyVersion {
        /// The plugin with the dependency (`name version`).
        plugin: String,
        /// The plugin it must follow.
        dependency: String,
        /// The versions of it that will do.
        req: VersionReq,
        /// The version the chain has.
        found: Version,
    },
    /// Plugins that must each come after the next, round a loop.
    #[error(
        "ordering cycle: {}: each must come after the next, which no order allows; the plugins' `after` lists \
         contradict each other: use versions that agree",
        .path.join(" -> ")
    )]
    Cycle {
        /// The plugins round the loop, the first repeated at the end.
        path: Vec<String>,
    },
}

fn refused_hint(refused: &[String]) -> String {
    match refused {
        [] => ": install it in the plugin directory, or check the name".into(),
        r => format!(": its folders were refused; fix them and discover again: {}", r.join("; ")),
    }
}

fn list(versions: &[Version]) -> String {
    versions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// The plugins `chain` asks for, in its order, or why it cannot be built.
pub fn resolve<'a>(catalog: &'a Catalog, chain: &[Request]) -> Result<Vec<&'a Plugin>, ResolveError> {
    no_duplicates(chain)?;
    let picked = chain.iter().map(|r| pick(catalog, r)).collect::<Result<Vec<_>, _>>()?;
    dependencies_present(&picked)?;
    no_cycle(&picked)?;
    dependencies_earlier(&picked)?;
    Ok(picked)
}

fn no_duplicates(chain: &[Request]) -> Result<(), ResolveError> {
    for (i, r) in chain.iter().enumerate() {
        if let Some(j) = chain[i + 1..].iter().position(|s| s.name == r.name) {
            return Err(ResolveError::Duplicate { name: r.name.clone(), first: i + 1, second: i + j + 2 });
        }
    }
    Ok(())
}

fn pick<'a>(catalog: &'a Catalog, r: &Request) -> Result<&'a Plugin, ResolveError> {
    if let Some(p) = catalog.best(&r.name, &r.version) {
        return Ok(p);
    }
    let available: Vec<Version> = catalog.versions(&r.name).map(|p| p.version().clone()).collect();
    if available.is_empty() {
        let refused = catalog.refused_for(&r.name).map(ToString::to_string).collect();
        return Err(ResolveError::NotFound { name: r.name.clone(), refused });
    }
    Err(ResolveError::NoMatch { name: r.name.clone(), req: r.version.clone(), available })
}

/// `name version`, as messages name a picked plugin.
struct Named<'a>(&'a Plugin);

impl fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0.name(), self.0.version())
    }
}

fn position(picked: &[&Plugin], name: &str) -> Option<usize> {
    picked.iter().position(|p| p.name() == name)
}

fn dependencies_present(picked: &[&Plugin]) -> Result<(), ResolveError> {
    for p in picked {
        if let Some(a) = p.manifest.after.iter().find(|a| position(picked, &a.name).is_none()) {
            return Err(ResolveError::MissingDependency {
                plugin: Named(p).to_string(),
                dependency: a.name.clone(),
                req: a.version.clone(),
            });
        }
    }
    Ok(())
}

/// Refuses a loop in the `after` graph (an edge from each plugin to each
/// one it must follow), naming the plugins round it. Checked before the
/// order, since in a loop some dependency is always later, and "move it
/// earlier" would send the operator round the loop.
fn no_cycle(picked: &[&Plugin]) -> Result<(), ResolveError> {
    let edges: Vec<Vec<usize>> =
        picked.iter().map(|p| p.manifest.after.iter().filter_map(|a| position(picked, &a.name)).collect()).collect();
    let mut state = vec![Visit::New; picked.len()];
    let mut stack = Vec::new();
    for start in 0..picked.len() {
        if let Some(cycle) = visit(start, &edges, &mut state, &mut stack) {
            let path = cycle.iter().map(|&i| picked[i].name().to_string()).collect();
            return Err(ResolveError::Cycle { path });
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    OnStack,
    Done,
}

/// Depth-first search from `node`; the loop found, as node indexes with
/// the first repeated at the end.
fn visit(node: usize, edges: &[Vec<usize>], state: &mut [Visit], stack: &mut Vec<usize>) -> Option<Vec<usize>> {
    match state[node] {
        Visit::Done => return None,
        Visit::OnStack => {
            let from = stack.iter().position(|&n| n == node).unwrap_or(0);
            let mut cycle = stack[from..].to_vec();
            cycle.push(node);
            return Some(cycle);
        }
        Visit::New => {}
    }
    state[node] = Visit::OnStack;
    stack.push(node);
    for &next in &edges[node] {
        if let Some(cycle) = visit(next, edges, state, stack) {
            return Some(cycle);
        }
    }
    stack.pop();
    state[node] = Visit::Done;
    None
}

fn dependencies_earlier(picked: &[&Plugin]) -> Result<(), ResolveError> {
    for (i, p) in picked.iter().enumerate() {
        for a in &p.manifest.after {
            let Some(j) = position(picked, &a.name) else { continue };
            if j > i {
                return Err(ResolveError::DependencyLater {
                    plugin: Named(p).to_string(),
                    plugin_at: i + 1,
                    dependency: a.name.clone(),
                    dependency_at: j + 1,
                });
            }
            if !a.version.matches(picked[j].version()) {
                return Err(ResolveError::DependencyVersion {
                    plugin: Named(p).to_string(),
                    dependency: a.name.clone(),
                    req: a.version.clone(),
                    found: picked[j].version().clone(),
                });
            }
        }
    }
    Ok(())
}
