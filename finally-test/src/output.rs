//! The program's output, read on threads of their own so that every wait for it is bounded.

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// The program's stdout, line by line: what the test has read, and what is still to come.
pub(crate) struct Lines {
    incoming: Option<Receiver<String>>,
    /// Every line taken from `incoming`, in order.
    pub(crate) read: Vec<String>,
    /// How many of `read` the test has been given.
    given: usize,
}

/// Why no line came.
pub(crate) enum NoLine {
    /// Stdout was closed: every process holding it has ended or closed it.
    Closed,
    /// None came within the patience.
    TimedOut,
}

impl Lines {
    pub(crate) fn new(output: Option<impl Read + Send + 'static>) -> Self {
        let incoming = output.map(|output| {
            let (send, incoming) = mpsc::channel();
            thread::spawn(move || {
                for line in BufReader::new(output).lines() {
                    let Ok(line) = line else { break };
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
            incoming
        });
        Lines {
            incoming,
            read: Vec::new(),
            given: 0,
        }
    }

    /// The next line the test has not been given, waiting until `deadline` at most.
    pub(crate) fn next(&mut self, deadline: Instant) -> Result<String, NoLine> {
        if self.given == self.read.len() {
            let incoming = self.incoming.as_ref().ok_or(NoLine::Closed)?;
            let left = deadline.saturating_duration_since(Instant::now());
            match incoming.recv_timeout(left) {
                Ok(line) => self.read.push(line),
                Err(RecvTimeoutError::Timeout) => return Err(NoLine::TimedOut),
                Err(RecvTimeoutError::Disconnected) => {
                    self.incoming = None;
                    return Err(NoLine::Closed);
                }
            }
        }
        self.given += 1;
        Ok(self.read[self.given - 1].clone())
    }

    /// Reads every line to the end of stdout, until `deadline` at most; false if it is still
    /// open then.
    pub(crate) fn read_to_end(&mut self, deadline: Instant) -> bool {
        while let Some(incoming) = &self.incoming {
            let left = deadline.saturating_duration_since(Instant::now());
            match incoming.recv_timeout(left) {
                Ok(line) => self.read.push(line),
                Err(RecvTimeoutError::Timeout) => return false,
                Err(RecvTimeoutError::Disconnected) => self.incoming = None,
            }
        }
        true
    }
}

/// The program's stderr, read whole: it is known once every process holding it has closed it.
pub(crate) struct Text {
    whole: Option<Receiver<String>>,
    text: Option<String>,
}

impl Text {
    /// Reads `output` to its end, on a thread; `None` (stderr not piped): the text is empty.
    pub(crate) fn new(output: Option<impl Read + Send + 'static>) -> Self {
        Self::read_by(output.map(|mut output| {
            move || {
                let mut bytes = Vec::new();
                let _ = output.read_to_end(&mut bytes);
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }))
    }

    /// The text that `read` returns, run on a thread.
    pub(crate) fn read_by(read: Option<impl FnOnce() -> String + Send + 'static>) -> Self {
        match read {
            None => Text {
                whole: None,
                text: Some(String::new()),
            },
            Some(read) => {
                let (send, whole) = mpsc::channel();
                thread::spawn(move || {
                    let _ = send.send(read());
                });
                Text {
                    whole: Some(whole),
                    text: None,
                }
            }
        }
    }

    /// The whole text, once its end is reached before `deadline`.
    pub(crate) fn get(&mut self, deadline: Instant) -> Option<&str> {
        if self.text.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let whole = self.whole.as_ref()?;
            self.text = Some(whole.recv_timeout(left).ok()?);
        }
        self.text.as_deref()
    }

    /// The text for an error's message: waits a moment at most, as the program has been
    /// killed and its stderr closes unless another process holds it.
    pub(crate) fn for_error(&mut self) -> Option<&str> {
        self.get(Instant::now() + Duration::from_secs(1))
    }
}
