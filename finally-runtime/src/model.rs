//! Model checks of the protocol: every interleaving of an owner and the shutdown, each cleanup
//! run exactly once, innermost first, and no node read once its frame is gone. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p finally-runtime --lib --release loom` (as `.ci/run`
//! does).

use loom::sync::atomic::{fence as atomic_fence, AtomicBool, AtomicU8};
use loom::sync::{Arc, Mutex};
use loom::thread;

use std::ptr;

use crate::exit::Exit;
use crate::fence;
use crate::protocol::{Header, Name, Stack, TAKEN};
use crate::sync::atomic::Ordering::{Relaxed, SeqCst};

const STARTED: u8 = 1;
const CLOSED: u8 = 2;

unsafe fn never(_: *const Header, _: &Exit) {
    unreachable!("the model runs cleanups through its own closures")
}

/// What one execution saw.
struct World {
    stack: Stack,
    /// The shutdown flag: [`STARTED`], then also [`CLOSED`].
    flag: AtomicU8,
    /// The slot's `walking`: the owner stands by while it is set.
    walking: AtomicBool,
    nodes: Vec<Header>,
    /// Whether each node's frame is gone: its call returned.
    gone: Vec<AtomicBool>,
    /// Cleanups run, by node index, in order.
    ran: Mutex<Vec<usize>>,
    /// Whether each node's body started: not withdrawn, nor nested in one withdrawn.
    started: Vec<AtomicBool>,
}

impl World {
    fn new(nodes: usize) -> Arc<Self> {
        Arc::new(World {
            stack: Stack::new(),
            flag: AtomicU8::new(0),
            walking: AtomicBool::new(false),
            nodes: (0..nodes)
                .map(|_| Header::new(never, Name::function(&"model"), ptr::null_mut()))
                .collect(),
            gone: (0..nodes).map(|_| AtomicBool::new(false)).collect(),
            ran: Mutex::new(Vec::new()),
            started: (0..nodes).map(|_| AtomicBool::new(false)).collect(),
        })
    }

    fn index(&self, header: &Header) -> usize {
        self.nodes
            .iter()
            .position(|node| ptr::eq(node, header))
            .unwrap()
    }

    /// The walk must not read a node whose frame is gone.
    fn alive(&self, header: &Header) {
        let index = self.index(header);
        assert!(
            !self.gone[index].load(SeqCst),
            "node {index} read after its frame"
        );
    }

    /// The owner: nested guarded calls, outermost first. It goes on through a shutdown,
    /// standing by while its stack is walked, as the runtime's owners do.
    fn owner(&self) {
        for (index, node) in self.nodes.iter().enumerate() {
            // A body entered during the shutdown still runs, unless it is nested in a
            // function that the shutdown takes over, or the shutdown is closed: then it never
            // starts, and its thread waits for good. Made above the top, as the runtime's nodes.
            node.prev.store(self.stack.top(), Relaxed);
            if self.stack.push(node, &self.flag).is_err()
                && (!node.prev.load(Relaxed).is_null() || self.flag.load(Relaxed) & CLOSED != 0)
            {
                // Withdrawn (by its owner, or by a walk), unless a walk took it first: its
                // cleanup then runs, once.
                let taken = !node.withdraw() && node.state.load(SeqCst) == TAKEN;
                self.started[index].store(taken, SeqCst);
                return;
            }
            self.started[index].store(true, SeqCst);
        }
        for (index, node) in self.nodes.iter().enumerate().rev() {
            // As `registry::finish`.
            if self.stack.tag(node, &self.flag).is_ok() {
                self.ran.lock().unwrap().push(index);
                if self.stack.pop(node, &self.flag).is_err() {
                    self.stand_by();
                }
            } else {
                if node.own() {
                    self.ran.lock().unwrap().push(index);
                    node.done();
                }
                let _ = self.stack.pop(node, &self.flag);
                self.stand_by();
            }
            // The call returns: its frame, and the node in it, is gone. A walk that still
            // followed it would read this dangling link (and fault), or trip `alive`.
            self.gone[index].store(true, SeqCst);
            node.prev.store(ptr::dangling_mut(), Relaxed);
        }
    }

    fn stand_by(&self) {
        atomic_fence(SeqCst);
        while self.walking.load(SeqCst) {
            thread::yield_now();
        }
    }

    fn shutdown(&self) {
        self.flag.store(STARTED, SeqCst);
        fence::heavy(false);
        let mut take_over = |header: &Header| {
            self.alive(header);
            self.ran.lock().unwrap().push(self.index(header));
        };
        let mut wait = |header: &Header| {
            self.alive(header);
            thread::yield_now();
        };
        // Two walks, as the runtime makes: the second, once the shutdown is closed, takes
        // over what a body that started during the first left pending.
        for walk in 0..2 {
            if walk == 1 {
                self.flag.store(STARTED | CLOSED, SeqCst);
                fence::heavy(false);
            }
            self.walking.store(true, SeqCst);
            atomic_fence(SeqCst);
            // SAFETY: the flag is started and the barrier run; the owner stands by.
            unsafe { self.stack.walk(false, &mut take_over, &mut wait, |_| {}) };
            self.walking.store(false, SeqCst);
        }
    }

    /// Once both are done: each cleanup whose body started ran exactly once, innermost
    /// first; any other never.
    fn check(&self) {
        let ran = self.ran.lock().unwrap().clone();
        assert!(ran.windows(2).all(|pair| pair[0] > pair[1]), "{ran:?}");
        for (index, started) in self.started.iter().enumerate() {
            let runs = ran.iter().filter(|&&i| i == index).count();
            let expected = usize::from(started.load(SeqCst));
            assert_eq!(runs, expected, "node {index}: {ran:?}");
        }
    }
}

fn model(nodes: usize) {
    loom::model(move || {
        let world = World::new(nodes);
        let owner = {
            let world = world.clone();
            thread::spawn(move || world.owner())
        };
        world.shutdown();
        owner.join().unwrap();
        world.check();
    });
}

#[test]
fn loom_a_returning_body_and_the_shutdown_run_the_cleanup_exactly_once() {
    model(1);
}

#[test]
fn loom_nested_calls_are_cleaned_up_once_each_innermost_first() {
    model(2);
}
