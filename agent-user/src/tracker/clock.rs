//! The clocks the tracker reads, passed in by its owner so that tests are deterministic.
//!
//! Kernel records carry `CLOCK_BOOTTIME` nanoseconds; events carry wall-clock time. The tracker
//! converts with the offset between the two (read once, at start, as before) and stamps
//! user-space events (sessions opened by registration, monitor events) with `now`. The daemon
//! passes [`SystemClock`]; tests pass a [`FixedClock`].

use agent_model::Timestamp;

/// Where the tracker gets its time.
pub trait Clock: Send {
    /// `CLOCK_REALTIME - CLOCK_BOOTTIME`, in ns: added to a record's boot time to get wall time.
    fn boot_offset_ns(&self) -> i64;
    /// Wall-clock time now.
    fn now(&self) -> Timestamp;
}

/// The host's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn boot_offset_ns(&self) -> i64 {
        boot_offset_ns()
    }

    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that never moves: a fixed boot offset and a fixed `now`.
#[derive(Clone, Copy, Debug, Default)]
pub struct FixedClock {
    pub boot_offset_ns: i64,
    pub now: Timestamp,
}

impl Clock for FixedClock {
    fn boot_offset_ns(&self) -> i64 {
        self.boot_offset_ns
    }

    fn now(&self) -> Timestamp {
        self.now
    }
}

/// `CLOCK_REALTIME - CLOCK_BOOTTIME` of the host, in ns.
pub fn boot_offset_ns() -> i64 {
    let mut rt = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let mut bt = rt;
    // SAFETY: clock_gettime writes a valid timespec.
    unsafe {
        libc::clock_gettime(libc::CLOCK_REALTIME, &mut rt);
        libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut bt);
    }
    (rt.tv_sec - bt.tv_sec) * 1_000_000_000 + (rt.tv_nsec - bt.tv_nsec)
}
