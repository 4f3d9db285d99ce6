//! The clock of one connection: what it is doing, and when it has had long enough to do it.
//!
//! A connection is idle (no request begun), reading a request head (some bytes arrived, no
//! request dispatched yet), or busy (a request dispatched, its response not yet finished).
//! Each state has its own deadline; time is always passed in, so the rules are testable.

use std::time::Duration;
use tokio::time::Instant;

/// How long a busy connection may stay silent past the request's own time limit: the time
/// limit answers 503 at that moment, so this only has to cover writing that answer.
const ANSWER_GRACE: Duration = Duration::from_secs(1);

/// The time bounds a connection lives under.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From the first byte of a request to its complete head (and, in the handler's time
    /// limit, to its answer).
    pub request: Duration,
    /// Without a request in flight, and for a busy connection on which nothing moves.
    pub idle: Duration,
}

/// Why a connection was cut; the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overdue {
    /// No request for `idle`.
    Idle,
    /// The request head did not arrive within `request`.
    Head,
    /// A request is in flight but nothing was read or written for `idle` after its time
    /// limit: a client that does not read its answer.
    Stalled,
}

impl Overdue {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Head => "head",
            Self::Stalled => "stalled",
        }
    }
}

#[derive(Debug)]
pub struct Activity {
    /// Requests dispatched whose responses are not finished (0 or 1 in HTTP/1, which answers
    /// in order).
    in_flight: usize,
    /// When the current request's first byte arrived (or it was dispatched from bytes already
    /// buffered); `None` while idle.
    request_started: Option<Instant>,
    /// The last byte read or written.
    last_io: Instant,
}

/// `at + by`, or a year on when that does not fit (a deadline that never comes in practice).
fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by)
        .or_else(|| at.checked_add(Duration::from_secs(86_400 * 365)))
        .unwrap_or(at)
}

impl Activity {
    pub fn new(now: Instant) -> Self {
        Self {
            in_flight: 0,
            request_started: None,
            last_io: now,
        }
    }

    /// Bytes arrived. Returns whether this began a request (the deadline moved).
    pub fn read(&mut self, now: Instant) -> bool {
        self.last_io = now;
        if self.in_flight == 0 && self.request_started.is_none() {
            self.request_started = Some(now);
            return true;
        }
        false
    }

    /// Bytes left.
    pub fn wrote(&mut self, now: Instant) {
        self.last_io = now;
    }

    /// A TLS handshake finished: its bytes began no request, so the connection is idle now.
    pub fn secured(&mut self, now: Instant) {
        if self.in_flight == 0 {
            self.request_started = None;
            self.last_io = now;
        }
    }

    /// A request head was parsed and dispatched. Returns when the request began, for the
    /// handler's time limit.
    pub fn dispatched(&mut self, now: Instant) -> Instant {
        self.in_flight += 1;
        *self.request_started.get_or_insert(now)
    }

    /// A response was finished (or abandoned). Returns whether the connection is idle now.
    pub fn answered(&mut self, now: Instant) -> bool {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            self.request_started = None;
            self.last_io = now;
            return true;
        }
        false
    }

    /// When the connection has had long enough in its present state, and what it then is.
    pub fn deadline(&self, timeouts: &Timeouts) -> (Instant, Overdue) {
        match (self.in_flight, self.request_started) {
            (0, None) => (later(self.last_io, timeouts.idle), Overdue::Idle),
            (0, Some(started)) => (later(started, timeouts.request), Overdue::Head),
            (_, started) => {
                let started = started.unwrap_or(self.last_io);
                let answered = later(later(started, timeouts.request), ANSWER_GRACE);
                let silent = later(self.last_io, timeouts.idle);
                (answered.max(silent), Overdue::Stalled)
            }
        }
    }

    /// Whether the connection is overdue at `now`, and why.
    pub fn overdue(&self, now: Instant, timeouts: &Timeouts) -> Option<Overdue> {
        let (deadline, why) = self.deadline(timeouts);
        (now >= deadline).then_some(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: Timeouts = Timeouts {
        request: Duration::from_secs(30),
        idle: Duration::from_secs(60),
    };

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn an_idle_connection_is_overdue_after_the_idle_timeout() {
        let t0 = Instant::now();
        let activity = Activity::new(t0);
        assert_eq!(activity.overdue(t0 + secs(59), &TIMEOUTS), None);
        assert_eq!(
            activity.overdue(t0 + secs(60), &TIMEOUTS),
            Some(Overdue::Idle)
        );
    }

    #[test]
    fn a_trickled_head_is_cut_at_the_request_timeout_from_its_first_byte() {
        let t0 = Instant::now();
        let mut activity = Activity::new(t0);
        assert!(activity.read(t0 + secs(10)));
        // Later bytes do not extend the deadline.
        for n in 11..39 {
            assert!(!activity.read(t0 + secs(n)));
        }
        assert_eq!(activity.overdue(t0 + secs(39), &TIMEOUTS), None);
        assert_eq!(
            activity.overdue(t0 + secs(40), &TIMEOUTS),
            Some(Overdue::Head)
        );
    }

    #[test]
    fn a_request_starts_at_its_first_byte_not_at_its_dispatch() {
        let t0 = Instant::now();
        let mut activity = Activity::new(t0);
        activity.read(t0 + secs(1));
        assert_eq!(activity.dispatched(t0 + secs(5)), t0 + secs(1));
    }

    #[test]
    fn a_request_dispatched_from_buffered_bytes_starts_at_its_dispatch() {
        let t0 = Instant::now();
        let mut activity = Activity::new(t0);
        assert_eq!(activity.dispatched(t0 + secs(3)), t0 + secs(3));
    }

    #[test]
    fn a_busy_connection_outlives_the_time_limit_only_while_bytes_move() {
        let t0 = Instant::now();
        let mut activity = Activity::new(t0);
        activity.read(t0);
        activity.dispatched(t0);
        // A handler working in silence is never cut before its own time limit answers.
        assert_eq!(activity.overdue(t0 + secs(30), &TIMEOUTS), None);
        // A long answer that keeps flowing is not cut.
        activity.wrote(t0 + secs(100));
        assert_eq!(activity.overdue(t0 + secs(159), &TIMEOUTS), None);
        // A client that stops reading it is.
        assert_eq!(
            activity.overdue(t0 + secs(160), &TIMEOUTS),
            Some(Overdue::Stalled)
        );
    }

    #[test]
    fn an_answered_request_makes_the_connection_idle_again() {
        let t0 = Instant::now();
        let mut activity = Activity::new(t0);
        activity.read(t0);
        activity.dispatched(t0);
        assert!(activity.answered(t0 + secs(2)));
        let (deadline, why) = activity.deadline(&TIMEOUTS);
        assert_eq!((deadline, why), (t0 + secs(62), Overdue::Idle));
        // The next request's first byte starts a new head clock.
        assert!(activity.read(t0 + secs(3)));
        assert_eq!(activity.deadline(&TIMEOUTS), (t0 + secs(33), Overdue::Head));
    }

    #[test]
    fn huge_timeouts_do_not_overflow() {
        let t0 = Instant::now();
        let activity = Activity::new(t0);
        let huge = Timeouts {
            request: Duration::MAX,
            idle: Duration::MAX,
        };
        assert_eq!(activity.overdue(t0 + secs(1_000_000), &huge), None);
    }
}
