//! The `depends_on` graph: the order services start in, and the cycles that would make any
//! order impossible (validation reports those). Both work on indices in file order, so ties
//! and reports are deterministic.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::config::model::Manifest;

/// Service names in an order where every dependency comes before its dependents; among
/// services free to start, lower `priority` first, then file order.
pub fn start_order(manifest: &Manifest) -> Vec<String> {
    let services = &manifest.services;
    let index_of = |name: &str| services.iter().position(|s| s.name == name);
    let deps: Vec<Vec<usize>> = services
        .iter()
        .map(|s| {
            s.depends_on
                .iter()
                .filter_map(|d| index_of(&d.service))
                .collect()
        })
        .collect();
    let priorities: Vec<i64> = services.iter().map(|s| s.priority).collect();
    order(&deps, &priorities)
        .into_iter()
        .map(|i| services[i].name.clone())
        .collect()
}

/// Kahn's algorithm with a heap of (priority, index) for the services ready to start.
/// `deps[i]` lists what `i` depends on. Services caught in a cycle (which validation rejects)
/// still appear, at the end, in (priority, index) order, so the result is always complete.
pub(crate) fn order(deps: &[Vec<usize>], priorities: &[i64]) -> Vec<usize> {
    let n = deps.len();
    let priority = |i: usize| priorities.get(i).copied().unwrap_or(0);
    let mut waiting_on = vec![0usize; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        let mut seen = ds.clone();
        seen.sort_unstable();
        seen.dedup();
        for d in seen.into_iter().filter(|&d| d < n && d != i) {
            waiting_on[i] += 1;
            dependents[d].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<(i64, usize)>> = (0..n)
        .filter(|&i| waiting_on[i] == 0)
        .map(|i| Reverse((priority(i), i)))
        .collect();
    let mut out = Vec::with_capacity(n);
    let mut placed = vec![false; n];
    while let Some(Reverse((_, i))) = ready.pop() {
        out.push(i);
        placed[i] = true;
        for &dependent in &dependents[i] {
            waiting_on[dependent] -= 1;
            if waiting_on[dependent] == 0 {
                ready.push(Reverse((priority(dependent), dependent)));
            }
        }
    }
    if out.len() < n {
        let mut rest: Vec<usize> = (0..n).filter(|&i| !placed[i]).collect();
        rest.sort_by_key(|&i| (priority(i), i));
        out.extend(rest);
    }
    out
}

/// Every distinct dependency cycle, each as the services along it (`a` depends on `b`
/// depends on `c` depends on `a` gives `[a, b, c]`), rotated to start at its first service
/// in file order. Self-dependencies are left to the caller. Iterative, so a long chain of
/// services cannot overflow the stack.
pub(crate) fn find_cycles(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        OnPath,
        Done,
    }
    let n = deps.len();
    let mut state = vec![State::New; n];
    let mut cycles: Vec<Vec<usize>> = Vec::new();
    for start in 0..n {
        if state[start] != State::New {
            continue;
        }
        // (node, next edge to follow); the stack is the current path.
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = State::OnPath;
        while let Some(top) = stack.last_mut() {
            let node = top.0;
            let Some(&dep) = deps[node].get(top.1) else {
                state[node] = State::Done;
                stack.pop();
                continue;
            };
            top.1 += 1;
            if dep >= n || dep == node {
                continue;
            }
            match state[dep] {
                State::New => {
                    state[dep] = State::OnPath;
                    stack.push((dep, 0));
                }
                State::OnPath => {
                    let from = stack.iter().position(|&(s, _)| s == dep).unwrap_or(0);
                    let mut cycle: Vec<usize> = stack[from..].iter().map(|&(s, _)| s).collect();
                    let first = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|&(_, &s)| s)
                        .map_or(0, |(i, _)| i);
                    cycle.rotate_left(first);
                    if !cycles.contains(&cycle) {
                        cycles.push(cycle);
                    }
                }
                State::Done => {}
            }
        }
    }
    cycles.sort();
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_come_first_then_priority_then_file_order() {
        // 0 web -> 2 db, 1 worker -> 2 db, 3 cache (priority -1), 4 migrate (priority 5)
        let deps = vec![vec![2], vec![2], vec![], vec![], vec![]];
        let priorities = vec![0, 0, 0, -1, 5];
        assert_eq!(order(&deps, &priorities), [3, 2, 0, 1, 4]);
    }

    #[test]
    fn priority_never_beats_a_dependency() {
        // 0 (priority -10) depends on 1 (priority 10).
        assert_eq!(order(&[vec![1], vec![]], &[-10, 10]), [1, 0]);
    }

    #[test]
    fn cycles_still_give_a_complete_order() {
        let deps = vec![vec![1], vec![0], vec![]];
        assert_eq!(order(&deps, &[0, 0, 0]), [2, 0, 1]);
        assert_eq!(order(&[vec![0, 0]], &[0]), [0]);
    }

    #[test]
    fn finds_each_cycle_once_starting_at_its_first_service() {
        // 0 -> 1 -> 2 -> 0, and 3 -> 4 -> 3, 5 -> 0 (not in a cycle), 6 -> 6 (self, ignored)
        let deps = vec![
            vec![1],
            vec![2],
            vec![0],
            vec![4],
            vec![3],
            vec![0],
            vec![6],
        ];
        assert_eq!(find_cycles(&deps), [vec![0, 1, 2], vec![3, 4]]);
        let rotated = vec![vec![2], vec![0], vec![1]];
        assert_eq!(find_cycles(&rotated), [vec![0, 2, 1]]);
        assert!(find_cycles(&[vec![1], vec![], vec![0, 1]]).is_empty());
    }

    #[test]
    fn long_chains_do_not_overflow() {
        let n = 100_000;
        let mut deps: Vec<Vec<usize>> = (0..n).map(|i| vec![i + 1]).collect();
        deps[n - 1] = vec![0];
        let cycles = find_cycles(&deps);
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), n);
        deps[n - 1] = vec![];
        let priorities = vec![0; n];
        let ordered = order(&deps, &priorities);
        assert_eq!(ordered.first(), Some(&(n - 1)));
    }
}
