//! What else ran on the machine while a bench measured. On 2 cores a build next door doubles
//! the 2-thread figures and stretches the p99 latencies: such a run measures the machine, and
//! says so.

use std::fs;

/// The CPU time of the machine and of this process (its threads and its reaped children), in
/// clock ticks.
struct Sample {
    machine_all: u64,
    machine_busy: u64,
    ours: u64,
}

impl Sample {
    /// `None` where `/proc` is not there or not Linux's.
    fn now() -> Option<Self> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        // cpu  user nice system idle iowait irq softirq steal ...; guests count within user.
        let ticks: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|field| field.parse().ok())
            .collect::<Option<_>>()?;
        let machine_all: u64 = ticks.iter().sum();
        let machine_busy = machine_all - ticks.get(3)? - ticks.get(4)?;
        // pid (comm) state ppid ... utime stime cutime cstime: the 14th to 17th fields.
        let own = fs::read_to_string("/proc/self/stat").ok()?;
        let after_comm = &own[own.rfind(')')? + 1..];
        let ours = after_comm
            .split_whitespace()
            .skip(11)
            .take(4)
            .map(|field| field.parse::<u64>().ok())
            .sum::<Option<u64>>()?;
        Some(Sample {
            machine_all,
            machine_busy,
            ours,
        })
    }
}

/// The machine's CPU use by other processes (and by its host, as steal time) from `start`.
pub struct OtherLoad {
    start: Option<Sample>,
}

impl OtherLoad {
    pub fn start() -> Self {
        OtherLoad {
            start: Sample::now(),
        }
    }

    /// "other processes: N% of the CPUs", from the start until now.
    pub fn report(&self) -> String {
        let (Some(start), Some(end)) = (&self.start, Sample::now()) else {
            return "other processes: unknown".to_owned();
        };
        let all = end.machine_all.saturating_sub(start.machine_all).max(1);
        let busy = end.machine_busy.saturating_sub(start.machine_busy);
        let others = busy.saturating_sub(end.ours.saturating_sub(start.ours));
        format!(
            "other processes: {:.0}% of the CPUs",
            100.0 * others as f64 / all as f64
        )
    }
}
