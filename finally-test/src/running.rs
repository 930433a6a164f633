//! A started program: what the test does to it, and waiting for its end.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use crate::output::{Lines, NoLine, Text};
use crate::terminal::{Hold, Terminal};
use crate::{signal_name, Ended, Ending, Error, Program};

/// A program the test started: signal it, hang up its terminal, kill it, and wait for its end.
///
/// Every wait is bounded by the program's [patience](Program::patience); one that runs out is
/// an [`Error`] that tells what the program wrote, and the program is killed. Dropping a
/// `Running` kills the program (its whole group, if it has one of its own) and reaps it, so
/// that no test leaves one behind, even a test that failed.
pub struct Running {
    child: Child,
    name: String,
    stdin: Option<ChildStdin>,
    lines: Lines,
    stderr: Text,
    terminal: Option<Hold>,
    patience: Duration,
    /// It leads a process group of its own.
    group: bool,
    started: Instant,
    /// When the test last made an ending happen.
    caused: Option<Instant>,
    /// How it ended, and when that was first seen.
    ended: Option<(ExitStatus, Instant)>,
    reaped: bool,
}

impl Running {
    pub(crate) fn spawn(mut program: Program) -> Result<Running, Error> {
        let name = format!("{:?}", program.name());
        let terminal = match program.terminal {
            true => {
                Some(Terminal::open().map_err(|error| Error::io("open a pseudo-terminal", error))?)
            }
            false => None,
        };
        program.prepare(terminal.as_ref().map(|terminal| &terminal.terminal))?;
        let mut child = spawn_retrying(&mut program.command)
            .map_err(|error| Error::io(format!("start {name}"), error))?;
        let (terminal, stderr) = match terminal {
            // The program has its copy of the terminal now; the kit keeps the other end only.
            Some(terminal) => match terminal.read() {
                Ok((hold, text)) => (Some(hold), text),
                Err(error) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::io("read the terminal", error));
                }
            },
            None => (None, Text::new(child.stderr.take())),
        };
        Ok(Running {
            stdin: child.stdin.take(),
            lines: Lines::new(child.stdout.take()),
            child,
            name,
            stderr,
            group: program.group || program.terminal,
            terminal,
            patience: program.patience,
            started: Instant::now(),
            caused: None,
            ended: None,
            reaped: false,
        })
    }

    /// The program's process id (and process group id, if it has a group of its own).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line of its stdout that the test has not read yet.
    ///
    /// # Errors
    ///
    /// If stdout closes first, or none comes within the patience.
    pub fn next_line(&mut self) -> Result<String, Error> {
        let deadline = Instant::now() + self.patience;
        match self.lines.next(deadline) {
            Ok(line) => Ok(line),
            Err(NoLine::Closed) => Err(self.fail("stdout closed: no more lines")),
            Err(NoLine::TimedOut) => {
                Err(self.fail(format!("no line on stdout within {:?}", self.patience)))
            }
        }
    }

    /// Waits for the line `expected` on stdout, skipping the lines before it.
    ///
    /// # Errors
    ///
    /// If stdout closes first, or it does not come within the patience.
    pub fn wait_for_line(&mut self, expected: &str) -> Result<(), Error> {
        self.wait_for_line_where(|line| line == expected)
            .map(drop)
            .map_err(|error| Error::new(format!("waiting for the line {expected:?}: {error}")))
    }

    /// Waits for a line of stdout for which `wanted` is true, skipping the lines before it,
    /// and returns it (`ready /tmp/scratch-42`: where the program put what the test checks).
    ///
    /// # Errors
    ///
    /// If stdout closes first, or none comes within the patience.
    pub fn wait_for_line_where(
        &mut self,
        mut wanted: impl FnMut(&str) -> bool,
    ) -> Result<String, Error> {
        let deadline = Instant::now() + self.patience;
        loop {
            match self.lines.next(deadline) {
                Ok(line) if wanted(&line) => return Ok(line),
                Ok(_) => {}
                Err(NoLine::Closed) => return Err(self.fail("stdout closed first")),
                Err(NoLine::TimedOut) => {
                    return Err(self.fail(format!("not within {:?}", self.patience)))
                }
            }
        }
    }

    /// Writes `line` to the program's stdin.
    ///
    /// # Errors
    ///
    /// If stdin is not a pipe ([`configure`](Program::configure) set it otherwise) or the
    /// program no longer reads it.
    pub fn say(&mut self, line: &str) -> Result<(), Error> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(Error::new(format!("{}'s stdin is not a pipe", self.name)));
        };
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|error| Error::io(format!("write {line:?} to {}'s stdin", self.name), error))
    }

    /// Makes `ending` happen to the program (see [`Ending`]); [`wait`](Self::wait) then tells
    /// how it ended, and how long after this call.
    ///
    /// # Errors
    ///
    /// If the program cannot be reached: it has ended already, has no stdin to ask it on, or
    /// no group or terminal of its own for an ending that needs one.
    pub fn end(&mut self, ending: Ending) -> Result<(), Error> {
        if let Some(request) = ending.request() {
            self.caused = Some(Instant::now());
            return self.say(&request);
        }
        match ending {
            Ending::Signal(signal) => self.signal(signal),
            Ending::SignalGroup(signal) => self.signal_group(signal),
            Ending::HangUp => self.hang_up(),
            Ending::CtrlC(times) => self.ctrl_c(times),
            Ending::Kill => self.kill(),
            _ => unreachable!("asked above"),
        }
    }

    /// Sends `signal` to the program's process.
    ///
    /// # Errors
    ///
    /// If it was reaped already.
    pub fn signal(&mut self, signal: i32) -> Result<(), Error> {
        self.send(self.pid() as i32, signal)
    }

    /// Sends `signal` to the program's process group: the program, and the processes it
    /// started that stayed in it (a guardian).
    ///
    /// # Errors
    ///
    /// If the program has no group of its own ([`Program::process_group`],
    /// [`Program::terminal`]): the test's own group would get it.
    pub fn signal_group(&mut self, signal: i32) -> Result<(), Error> {
        if !self.group {
            return Err(Error::new(format!(
                "{} has no process group of its own: start it with `Program::process_group`",
                self.name
            )));
        }
        self.send(-(self.pid() as i32), signal)
    }

    /// Presses Ctrl-C `times` times: SIGINT to the program's process group if it has its own
    /// (as a terminal sends it), else to the process, a millisecond apart. Signals that arrive
    /// while one is still pending merge into it, as on a real terminal.
    ///
    /// # Errors
    ///
    /// If the first one cannot be sent; the later ones may find the program ended.
    pub fn ctrl_c(&mut self, times: u32) -> Result<(), Error> {
        let target = match self.group {
            true => -(self.pid() as i32),
            false => self.pid() as i32,
        };
        for press in 0..times {
            if press > 0 {
                thread::sleep(Duration::from_millis(1));
                // SAFETY: `kill` of our own child (or its group), not reaped yet.
                unsafe { libc::kill(target, libc::SIGINT) };
            } else {
                self.send(target, libc::SIGINT)?;
            }
        }
        Ok(())
    }

    /// Hangs up the program's terminal, as closing a terminal window does: the kernel sends
    /// SIGHUP (and SIGCONT) to it, and its writes to the terminal fail with `EIO` from then
    /// on. Returns once the terminal is closed.
    ///
    /// # Errors
    ///
    /// If the program was not started on a [terminal](Program::terminal).
    pub fn hang_up(&mut self) -> Result<(), Error> {
        let Some(terminal) = self.terminal.as_mut() else {
            return Err(Error::new(format!(
                "{} has no terminal to hang up: start it with `Program::terminal`",
                self.name
            )));
        };
        self.caused = Some(Instant::now());
        terminal.hang_up();
        // The reading thread closes the terminal, then hands over what it read.
        let deadline = Instant::now() + self.patience;
        match self.stderr.get(deadline) {
            Some(_) => Ok(()),
            None => Err(self.fail("the terminal did not close")),
        }
    }

    /// `kill -9`: SIGKILL to the program's process.
    ///
    /// # Errors
    ///
    /// If it was reaped already.
    pub fn kill(&mut self) -> Result<(), Error> {
        self.signal(libc::SIGKILL)
    }

    /// Asks the program to crash (see [`Ending::Crash`]): a real invalid memory access,
    /// SIGSEGV.
    ///
    /// # Errors
    ///
    /// If its stdin is not a pipe, or it no longer reads it.
    pub fn crash(&mut self) -> Result<(), Error> {
        self.end(Ending::Crash)
    }

    /// Whether the program has ended (it is not reaped: a guardian can still read from its
    /// zombie how it ended).
    pub fn has_ended(&mut self) -> bool {
        self.peek().is_some()
    }

    /// Waits until the program has ended, without reaping it, and tells how.
    ///
    /// # Errors
    ///
    /// If it does not end within the patience; it is killed then.
    pub fn wait_for_exit(&mut self) -> Result<ExitStatus, Error> {
        let deadline = Instant::now() + self.patience;
        loop {
            if let Some(status) = self.peek() {
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(self.fail(format!("it did not end within {:?}", self.patience)));
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits until the program has ended and reaps it at once, as a parent quick to wait
    /// does (a guardian can then no longer read from its zombie how it ended).
    ///
    /// # Errors
    ///
    /// If it does not end within the patience; it is killed then.
    pub fn reap(&mut self) -> Result<ExitStatus, Error> {
        let status = self.wait_for_exit()?;
        if !self.reaped {
            self.child
                .wait()
                .map_err(|error| Error::io("reap the program", error))?;
            self.reaped = true;
        }
        Ok(status)
    }

    /// Waits until the program has ended and every process holding its stdout and stderr
    /// has closed them (a guardian too: its cleanup has run then), reaps it last, and tells
    /// how it ended and what it wrote.
    ///
    /// # Errors
    ///
    /// If it does not end, or its output does not close, within the patience (a process it
    /// started outlives it): the program is killed.
    pub fn wait(mut self) -> Result<Ended, Error> {
        let status = self.wait_for_exit()?;
        let deadline = Instant::now() + self.patience;
        let stdout_closed = self.lines.read_to_end(deadline);
        let stderr = self.stderr.get(deadline).map(str::to_owned);
        let Some(stderr) = stderr.filter(|_| stdout_closed) else {
            return Err(self.fail(format!(
                "it ended ({status}), but its stdout or stderr was still open {:?} later: a \
                 process it started outlives it",
                self.patience
            )));
        };
        self.reap()?;
        let (status, at) = self.ended.expect("ended");
        let since = self.caused.unwrap_or(self.started);
        Ok(Ended {
            status,
            code: status.code(),
            signal: status.signal(),
            took: at.saturating_duration_since(since),
            stdout: std::mem::take(&mut self.lines.read),
            stderr,
        })
    }

    /// How the program ended, if it has: looked at without reaping it where the system allows.
    fn peek(&mut self) -> Option<ExitStatus> {
        if self.ended.is_none() {
            let status = peek(&mut self.child, &mut self.reaped)?;
            self.ended = Some((status, Instant::now()));
        }
        self.ended.map(|(status, _)| status)
    }

    fn send(&mut self, target: i32, signal: i32) -> Result<(), Error> {
        if self.reaped {
            return Err(Error::new(format!(
                "{} was reaped already: no {} sent",
                self.name,
                signal_name(signal)
            )));
        }
        self.caused = Some(Instant::now());
        // SAFETY: `kill` of our own child, or of the group it leads, not reaped yet: its pid
        // is still its own.
        if unsafe { libc::kill(target, signal) } != 0 {
            return Err(Error::io(
                format!("send {} to {target}", signal_name(signal)),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Kills the program, and makes an error of `message` with what it wrote.
    fn fail(&mut self, message: impl Into<String>) -> Error {
        self.kill_now();
        let message = format!("{}: {}", self.name, message.into());
        let stderr = self.stderr.for_error().map(str::to_owned);
        Error::new(message).with_output(&self.lines.read, stderr.as_deref())
    }

    fn kill_now(&mut self) {
        if self.reaped {
            return;
        }
        let pid = self.pid() as i32;
        // SAFETY: `kill` of our own unreaped child, and of the group it leads.
        unsafe {
            if self.group {
                libc::kill(-pid, libc::SIGKILL);
            }
            libc::kill(pid, libc::SIGKILL);
        }
        if let Ok(status) = self.child.wait() {
            self.ended.get_or_insert((status, Instant::now()));
        }
        self.reaped = true;
    }
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("program", &self.name)
            .field("pid", &self.pid())
            .field("ended", &self.ended.map(|(status, _)| status))
            .finish_non_exhaustive()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed test must not leave its program behind.
        self.kill_now();
    }
}

/// Starts `command`. A program just built or copied may still be held open for writing by a
/// child that another test's thread forked meanwhile, which inherited the descriptor and has
/// not reached its `exec` yet: `exec` then fails with ETXTBSY, and is tried again, for a
/// second at most.
fn spawn_retrying(command: &mut std::process::Command) -> std::io::Result<Child> {
    let mut tries = 0;
    loop {
        match command.spawn() {
            Err(error) if error.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                thread::sleep(Duration::from_millis(10));
            }
            spawned => return spawned,
        }
    }
}

/// How `child` ended, if it has, leaving it a zombie (`waitid` with `WNOWAIT`).
#[cfg(target_os = "linux")]
fn peek(child: &mut Child, _reaped: &mut bool) -> Option<ExitStatus> {
    // SAFETY: a zeroed `siginfo_t` is a valid out-parameter.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `waitid` of our own child, leaving it waitable.
    let waited = unsafe {
        libc::waitid(
            libc::P_PID,
            child.id() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if waited != 0 {
        return None;
    }
    // SAFETY: `waitid` filled `info`; a zero pid means it has not ended.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    // The wait status `waitpid` would give, made of the code and the reason.
    let raw = match info.si_code {
        _ if pid == 0 => return None,
        libc::CLD_EXITED => status << 8,
        libc::CLD_DUMPED => status | 0x80,
        _ => status,
    };
    Some(ExitStatus::from_raw(raw))
}

/// How `child` ended, if it has: reaped at once where `waitid` cannot leave it a zombie.
#[cfg(not(target_os = "linux"))]
fn peek(child: &mut Child, reaped: &mut bool) -> Option<ExitStatus> {
    let status = child.try_wait().ok()??;
    *reaped = true;
    Some(status)
}
