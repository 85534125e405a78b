//! What a subscriber hands out: messages, per-stream and total counts.

/// One received message, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Stream id.
    pub stream: u64,
    /// The stream's sequence number.
    pub seq: u64,
    /// The stream's byte position at the end of this message (the sum of
    /// the payload lengths of the stream's messages up to and including
    /// this one); grant credit from it (docs/protocol.md, "Flow control").
    pub position: u64,
    /// When the appliance received it (ns since the Unix epoch).
    pub timestamp_ns: u64,
    /// Priority class.
    pub class: u8,
    /// Payload.
    pub payload: Vec<u8>,
}

/// What the subscriber saw of one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamState {
    /// The sequence number expected next (after the first message seen).
    pub next_seq: Option<u64>,
    /// Messages received.
    pub received: u64,
    /// Messages missed: the sum of forward jumps in sequence numbers (from
    /// the first message seen after subscribing).
    pub lost: u64,
    /// Messages at or below a sequence number already seen.
    pub out_of_order: u64,
}

/// Totals over all streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriberStats {
    /// Messages received.
    pub received: u64,
    /// Messages missed (sequence gaps).
    pub lost: u64,
    /// Messages out of order or duplicated.
    pub out_of_order: u64,
    /// DELIVER datagrams received.
    pub datagrams: u64,
    /// Datagrams that were not valid DELIVER/ACK/ERROR frames.
    pub malformed: u64,
    /// ERROR `SlowConsumer` notices: subscriptions the appliance removed
    /// because this subscriber fell behind (see
    /// [`crate::Subscriber::slow_consumer_notices`]).
    pub slow_consumer: u64,
    /// CREDIT datagrams sent (automatic, manual and heartbeat re-sends).
    pub credits_sent: u64,
    /// Times the appliance was seen to have restarted (a new instance in
    /// an ACK or ERROR `UnknownSubscriber`): every subscription was made
    /// again and every stream's sequence numbers started again, so the
    /// messages published meanwhile are not in `lost`.
    pub restarts: u64,
    /// Times the subscriptions were made again because heartbeat answers
    /// showed fewer than were made (expired, or the appliance restarted).
    pub resubscribes: u64,
    /// SUBSCRIBEs made again that the appliance refused (a table full):
    /// their streams are no longer counted as subscribed.
    pub resubscribe_refused: u64,
    /// Socket calls that failed with a transient error (the appliance or
    /// the route to it was away, or a signal interrupted the call); the
    /// subscriber went on.
    pub socket_errors: u64,
}

/// Updates a stream's state with a received sequence number. A forward
/// jump counts the skipped numbers as lost; a number below the expected
/// one counts as out of order (a late message was first counted lost, so
/// it then appears in both: the appliance never reorders a stream, so any
/// of these means the network did).
pub(super) fn check_sequence(st: &mut StreamState, seq: u64, totals: &mut SubscriberStats) {
    st.received += 1;
    totals.received += 1;
    match st.next_seq {
        Some(next) if seq < next => {
            st.out_of_order += 1;
            totals.out_of_order += 1;
        }
        Some(next) => {
            st.lost += seq - next;
            totals.lost += seq - next;
            st.next_seq = Some(seq.wrapping_add(1));
        }
        None => st.next_seq = Some(seq.wrapping_add(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_checks() {
        let mut st = StreamState::default();
        let mut t = SubscriberStats::default();
        for seq in [5, 6, 9, 8, 10] {
            check_sequence(&mut st, seq, &mut t);
        }
        assert_eq!(st, StreamState { next_seq: Some(11), received: 5, lost: 2, out_of_order: 1 });
        assert_eq!((t.received, t.lost, t.out_of_order), (5, 2, 1));
    }
}
