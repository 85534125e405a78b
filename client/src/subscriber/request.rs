//! SUBSCRIBE and UNSUBSCRIBE requests: retries, and the answers of every
//! part (core) they were split into.

use crate::ranges::Ranges;
use crate::ClientError;
use ms_wire::control::{ErrorCode, ErrorEntry, RangeRequest};
use std::net::SocketAddr;
use std::time::Duration;

/// Sends per request before giving up.
pub(super) const ATTEMPTS: u32 = 5;

/// The pause before a request a core answered `Busy` is sent again.
pub(super) const BUSY_PAUSE: Duration = Duration::from_millis(20);

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// SUBSCRIBE.
    Subscribe,
    /// UNSUBSCRIBE.
    Unsubscribe,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Every part acknowledged: the streams the appliance changed.
    Applied(u32),
    /// A part refused (the first refusal); the other parts changed
    /// `applied` streams.
    Refused {
        /// Reason.
        code: ErrorCode,
        /// Code-specific detail.
        detail: u64,
        /// Streams changed by the parts that were applied.
        applied: u32,
    },
    /// No complete answer after `attempts` sends.
    TimedOut {
        /// Sends made.
        attempts: u32,
    },
}

impl RequestOutcome {
    /// As the blocking [`crate::Subscriber`] reports it: request
    /// `request` to the appliance at `target`.
    pub fn into_result(self, request: u32, target: SocketAddr) -> Result<u32, ClientError> {
        match self {
            RequestOutcome::Applied(n) => Ok(n),
            RequestOutcome::Refused { code, detail, applied } => {
                Err(ClientError::Refused { request, code, detail, applied })
            }
            RequestOutcome::TimedOut { attempts } => Err(ClientError::Timeout { target, attempts }),
        }
    }
}

/// A request waiting for its answers.
#[derive(Debug)]
pub(super) struct Request {
    pub kind: RequestKind,
    pub entry: RangeRequest,
    /// How long each send waits for the answers.
    pub timeout: Duration,
    /// Sends made.
    pub attempts: u32,
    /// When the next send is due (or the request times out).
    pub deadline: Duration,
    /// Answers per part, kept across sends: a lost ACK makes us send
    /// again, and the appliance then reports 0 for that part.
    pub parts: Parts,
    /// The subscriptions before a SUBSCRIBE counted its range in: put back
    /// when it fails.
    pub undo: Option<Ranges>,
}

/// The answers to one request, one per part (core) once the first answer
/// says how many parts there are.
#[derive(Debug, Default)]
pub(super) struct Parts(Vec<Option<Result<u32, ErrorEntry>>>);

impl Parts {
    fn slot(&mut self, part: u16, parts: u16) -> Option<&mut Option<Result<u32, ErrorEntry>>> {
        if self.0.is_empty() {
            self.0 = vec![None; usize::from(parts.max(1))];
        }
        self.0.get_mut(usize::from(part))
    }

    pub fn ack(&mut self, a: ms_wire::control::Ack) {
        if let Some(p) = self.slot(a.part, a.parts) {
            // A resent request is answered again, with 0 changed where the
            // first answer was lost: keep the larger count.
            let before = p.and_then(Result::ok).unwrap_or(0);
            *p = Some(Ok(before.max(a.streams)));
        }
    }

    pub fn refuse(&mut self, e: ErrorEntry) {
        if let Some(p) = self.slot(e.part, e.parts) {
            *p = Some(Err(e));
        }
    }

    /// Once every part answered: the streams changed, or the first
    /// refusal with what the other parts applied.
    pub fn done(&self) -> Option<RequestOutcome> {
        if self.0.is_empty() || self.0.iter().any(Option::is_none) {
            return None;
        }
        let applied = self.0.iter().filter_map(|p| p.and_then(Result::ok)).sum();
        Some(match self.0.iter().find_map(|p| p.and_then(Result::err)) {
            Some(e) => RequestOutcome::Refused { code: e.code, detail: e.detail, applied },
            None => RequestOutcome::Applied(applied),
        })
    }
}

/// True when ERROR `e` answers the pending `request`: it names it, or it
/// has no request id (0) and its code refuses a whole datagram or request
/// (the appliance answers a datagram it could not parse with
/// UnsupportedVersion, UnknownType or Malformed and request 0). Notices
/// (SlowConsumer), MixedShards (which answers a PUBLISH) and codes this
/// version does not know never answer a request.
pub(super) fn answers(e: &ErrorEntry, request: Option<u32>) -> bool {
    let Some(request) = request else { return false };
    if e.request == request {
        return true;
    }
    e.request == 0
        && matches!(
            e.code,
            ErrorCode::UnsupportedVersion
                | ErrorCode::Malformed
                | ErrorCode::UnknownType
                | ErrorCode::RangeTooLarge
                | ErrorCode::StreamTableFull
                | ErrorCode::SubscribersFull
                | ErrorCode::SubscriptionsFull
                | ErrorCode::Busy
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_errors_answer_a_request() {
        let e = |request, code| ErrorEntry::whole(request, code, 0);
        assert!(answers(&e(7, ErrorCode::SubscriptionsFull), Some(7)));
        assert!(answers(&e(7, ErrorCode::Busy), Some(7)));
        assert!(!answers(&e(8, ErrorCode::Busy), Some(7)), "another request's");
        assert!(answers(&e(0, ErrorCode::Malformed), Some(7)));
        assert!(answers(&e(0, ErrorCode::UnsupportedVersion), Some(7)));
        assert!(answers(&e(0, ErrorCode::UnknownType), Some(7)));
        assert!(!answers(&e(0, ErrorCode::SlowConsumer), Some(7)), "a notice");
        assert!(!answers(&e(0, ErrorCode::MixedShards), Some(7)), "answers a PUBLISH");
        assert!(!answers(&e(0, ErrorCode::Unknown(99)), Some(7)));
        assert!(!answers(&e(0, ErrorCode::Malformed), None), "no request pending");
    }
}
