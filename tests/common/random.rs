//! A small, seeded random number generator (xorshift), for randomised timings and generated
//! cases: a run is repeated from its seed.

pub struct Random(u64);

impl Random {
    /// Seeded from the clock; [`seed`](Self::seed) tells how to repeat it.
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Random(nanos as u64 | 1)
    }

    /// Repeats the numbers of the generator `seed` made.
    pub fn from_seed(seed: u64) -> Self {
        Random(seed | 1)
    }

    pub fn seed(&self) -> u64 {
        self.0
    }

    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}
