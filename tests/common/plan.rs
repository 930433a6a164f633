//! One generated case of the combination test: the options, the threads with the guarded
//! functions and guards they nest, what each does at the bottom, and how the process is made to
//! end. The program that runs a case (`tests/bin/combo/`) and the test that checks it
//! (`tests/combinations.rs`) make the same plan from the same seed and index.

use super::random::Random;

/// The handled signals of the README's table.
pub const SIGNALS: [i32; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// The most levels a case has: the program has that many instances of each guarded function.
pub const MOST_LEVELS: u32 = 16;

#[derive(Debug)]
pub struct Plan {
    /// The application's `timeout`, in milliseconds.
    pub timeout_ms: Option<u64>,
    pub force_quit_after: Option<u32>,
    /// The application's `signals`: all four, or only SIGINT and SIGTERM.
    pub only_int_and_term: bool,
    /// `#[with_cleanup(main_cleanup, guardian)]` on `main` (another program, whose options are
    /// the defaults); its cleanup is named `main`.
    pub guardian: bool,
    /// A `tracing` subscriber at `DEBUG` on stderr: the application's copy tells each cleanup.
    pub traced: bool,
    /// The first is `main`'s.
    pub threads: Vec<ThreadPlan>,
    pub ending: Ending,
}

/// Which copy of `finally` a thread's functions and guards are of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copy {
    /// The application's, `finally`.
    App,
    /// A library's on another version: `finally_second`.
    Library,
}

#[derive(Debug)]
pub struct ThreadPlan {
    pub copy: Copy,
    /// Outermost first.
    pub levels: Vec<Level>,
    pub bottom: Bottom,
}

#[derive(Debug)]
pub struct Level {
    /// Unique in the case, below [`MOST_LEVELS`]; the cleanup is named `L<id>`.
    pub id: u32,
    pub kind: Kind,
    pub cleanup: Cleanup,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A guarded function, with a grace period or not.
    Function(Grace),
    /// A guarded `async fn`, driven by a tokio runtime on the thread: always the last level.
    Async,
    /// A guard, and what becomes of it.
    Guard(Fate),
    /// A guard with state for the guardian (`guard_with`), kept in the scope.
    GuardWith,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grace {
    None,
    /// 300 ms.
    Short,
    /// 2 s.
    Long,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Kept in its scope.
    Kept,
    /// Moved to another thread, which keeps it for good.
    Held,
    /// Moved to another thread, which drops it before the case is ready.
    DroppedElsewhere,
    Dismissed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cleanup {
    Quick,
    /// Takes the lock that looping threads hold across their guarded calls.
    Locking,
    /// Takes a minute: a `timeout` cuts it.
    Slow,
}

/// What a thread does once its levels are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bottom {
    /// Waits for good (for a command, on a thread that gets one).
    Wait,
    /// Returns once its copy's stop is requested (or a command comes).
    Cooperative,
    /// Loops `lock; guarded call; unlock` (and looks for a command).
    Loop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `main`'s bottom returns.
    Return,
    /// `main`'s bottom panics with `boom`.
    Panic,
    /// That thread's bottom calls `exit(code)`.
    Exit { thread: usize, code: i32 },
    /// The signal, then `more` of it, spaced.
    Signal { signal: i32, more: u32 },
    /// SIGKILL, with the guardian.
    Kill,
}

impl Plan {
    /// The plan of case `index` of the run `seed`.
    pub fn new(seed: u64, index: u64) -> Plan {
        let mut random = Random::from_seed(seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut pick = |bound: u64| random.below(bound);
        let guardian = pick(6) == 0;
        let ending = match pick(20) {
            _ if guardian && pick(2) == 0 => Ending::Kill,
            0..=2 => Ending::Return,
            3..=5 => Ending::Panic,
            6..=9 => Ending::Exit {
                thread: 0,
                code: 3 + pick(7) as i32,
            },
            _ => Ending::Signal {
                signal: SIGNALS[pick(4) as usize],
                more: [0, 0, 0, 1, 2, 3][pick(6) as usize],
            },
        };
        let timeout_ms = match guardian {
            true => None,
            false => [None, None, Some(1000), Some(3000)][pick(4) as usize],
        };
        let force_quit_after = match guardian {
            true => None,
            false => [None, None, Some(2), Some(3)][pick(4) as usize],
        };
        let only_int_and_term = !guardian && pick(4) == 0;
        // A second copy only where both copies handle the same signals (the library's are the
        // defaults).
        let copies = !only_int_and_term && pick(3) == 0;
        // Cut by a deadline: only where one is, and a signal or `exit` runs the cleanups.
        let slow_allowed = timeout_ms.is_some()
            && matches!(ending, Ending::Signal { .. } | Ending::Exit { .. })
            && pick(3) == 0;
        let mut next_id = 0;
        let threads: Vec<ThreadPlan> = (0..1 + pick(3))
            .map(|thread| {
                let main = thread == 0;
                let copy = match copies && pick(2) == 0 {
                    true => Copy::Library,
                    false => Copy::App,
                };
                let bottom = [
                    Bottom::Wait,
                    Bottom::Wait,
                    Bottom::Cooperative,
                    Bottom::Loop,
                ][pick(4) as usize];
                let mut levels: Vec<Level> = (0..pick(4))
                    .map(|_| {
                        let kind = match pick(10) {
                            0..=3 => Kind::Function(Grace::None),
                            4 => Kind::Function(Grace::Short),
                            5 => Kind::Function(Grace::Long),
                            6 if guardian && copy == Copy::App => Kind::GuardWith,
                            6 | 7 => Kind::Guard(Fate::Kept),
                            8 => {
                                Kind::Guard([Fate::Held, Fate::DroppedElsewhere][pick(2) as usize])
                            }
                            _ => Kind::Guard(Fate::Dismissed),
                        };
                        let cleanup = match pick(6) {
                            // A lock that the thread itself holds across its calls, which one of
                            // its own cleanups needs: not solved (README).
                            0 | 1 if bottom != Bottom::Loop => Cleanup::Locking,
                            // Not one that runs before the case is ready.
                            2 if slow_allowed && kind != Kind::Guard(Fate::DroppedElsewhere) => {
                                Cleanup::Slow
                            }
                            _ => Cleanup::Quick,
                        };
                        next_id += 1;
                        Level {
                            id: next_id - 1,
                            kind,
                            cleanup,
                        }
                    })
                    .collect();
                if !main && bottom != Bottom::Loop && pick(4) == 0 {
                    next_id += 1;
                    levels.push(Level {
                        id: next_id - 1,
                        kind: Kind::Async,
                        cleanup: Cleanup::Quick,
                    });
                }
                ThreadPlan {
                    copy,
                    levels,
                    bottom,
                }
            })
            .collect();
        let ending = match ending {
            // From any thread that can take a command (not one driving a future).
            Ending::Exit { code, .. } => {
                let thread = pick(threads.len() as u64) as usize;
                let is_async =
                    |plan: &ThreadPlan| plan.levels.iter().any(|l| l.kind == Kind::Async);
                Ending::Exit {
                    thread: if is_async(&threads[thread]) {
                        0
                    } else {
                        thread
                    },
                    code,
                }
            }
            ending => ending,
        };
        // Last, so that the rest of a seed's cases stay as they were.
        let traced = pick(3) == 0;
        Plan {
            timeout_ms,
            force_quit_after,
            only_int_and_term,
            guardian,
            traced,
            threads,
            ending,
        }
    }

    /// The level `id`.
    pub fn level(&self, id: u32) -> &Level {
        self.threads
            .iter()
            .flat_map(|thread| &thread.levels)
            .find(|level| level.id == id)
            .expect("a level of the plan")
    }
}
