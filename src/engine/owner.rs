//! Which process owns a run, and whether it is still alive: how the janitor tells a crashed run
//! from one that is merely long.

use crate::ledger::record::Owner;

/// What can be known about an owner from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Dead,
    /// Another host: only the run's deadline can tell.
    Unknown,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Field 22 of `/proc/<pid>/stat`: the start time in clock ticks since boot. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = read(&format!("/proc/{pid}/stat"))?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

pub fn hostname() -> String {
    read("/proc/sys/kernel/hostname").or_else(|| std::env::var("HOSTNAME").ok()).unwrap_or_else(|| "unknown".into())
}

/// This process.
pub fn current() -> Owner {
    let pid = std::process::id();
    Owner {
        host: hostname(),
        pid,
        boot_id: read("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
        start_ticks: start_ticks(pid).unwrap_or(0),
    }
}

/// Whether `owner` still runs.
pub fn liveness(owner: &Owner) -> Liveness {
    let me = current();
    if owner.host != me.host {
        return Liveness::Unknown;
    }
    if owner.boot_id != me.boot_id {
        return Liveness::Dead;
    }
    match start_ticks(owner.pid) {
        Some(t) if t == owner.start_ticks => Liveness::Alive,
        _ => Liveness::Dead,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_or_gone_pid_is_not() {
        let me = current();
        assert!(me.start_ticks > 0);
        assert_eq!(liveness(&me), Liveness::Alive);
        assert_eq!(liveness(&Owner { start_ticks: me.start_ticks + 1, ..me.clone() }), Liveness::Dead);
        assert_eq!(liveness(&Owner { pid: u32::MAX - 1, ..me.clone() }), Liveness::Dead);
        assert_eq!(liveness(&Owner { boot_id: "earlier-boot".into(), ..me.clone() }), Liveness::Dead);
        assert_eq!(liveness(&Owner { host: "elsewhere".into(), ..me }), Liveness::Unknown);
    }
}
