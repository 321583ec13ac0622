//! A session's in-socket acknowledgments, carried out and answered in the order sent.
//!
//! `ack_result` names only the alert, so a dashboard that sends several `ack` frames can
//! match the answers to them only by their order; and two acks of one alert sent back to
//! back (`acknowledged`, then `resolved`) must be stored in that order, as an HTTP client
//! waiting for each answer would have them. Each ack ran as a task of its own and was
//! answered when it finished: a refusal decided at once (a `status` of `"bogus"`) came
//! back before an earlier ack still being stored, and on PostgreSQL two acks could
//! commit in either order.

use std::collections::BTreeMap;

use tokio::sync::oneshot;

/// The order of one session's acks: whose turn it is to run, and whose to be answered.
#[derive(Debug, Default)]
pub struct AckOrder {
    /// Tickets handed out so far: the next ack's place.
    issued: u64,
    /// The ticket whose answer goes out next.
    next_answer: u64,
    /// Answers ready before an earlier ack's, held until theirs has gone out.
    early: BTreeMap<u64, String>,
    /// Resolves when the last ack's task has finished (its sender dropped).
    last_done: Option<oneshot::Receiver<()>>,
}

/// An ack's place in the order of answers.
#[derive(Debug)]
pub struct Ticket(u64);

/// Held by an ack's task while it runs: it waits for the ack before it, and the ack
/// after it waits for this one to be dropped, even if its task panicked.
#[derive(Debug)]
pub struct Turn {
    previous: Option<oneshot::Receiver<()>>,
    _done: oneshot::Sender<()>,
}

impl Turn {
    /// Returns once every earlier ack of the session has finished.
    pub async fn wait(&mut self) {
        if let Some(previous) = self.previous.take() {
            // Err means the earlier ack's task ended: its turn is over all the same.
            let _ = previous.await;
        }
    }
}

impl AckOrder {
    /// The next ack's place among the answers; every ticket must be answered.
    pub fn ticket(&mut self) -> Ticket {
        let ticket = Ticket(self.issued);
        self.issued += 1;
        ticket
    }

    /// The turn of an ack that goes to the database, after every earlier one.
    pub fn turn(&mut self) -> Turn {
        let (done, finished) = oneshot::channel();
        Turn {
            previous: self.last_done.replace(finished),
            _done: done,
        }
    }

    /// Records `ticket`'s answer; returns the answers that may go out now, in order
    /// (none while an earlier ack is still unanswered).
    pub fn answer(&mut self, ticket: Ticket, frame: String) -> Vec<String> {
        self.early.insert(ticket.0, frame);
        let mut ready = Vec::new();
        while let Some(frame) = self.early.remove(&self.next_answer) {
            ready.push(frame);
            self.next_answer += 1;
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[test]
    fn answers_go_out_in_the_order_of_their_tickets() {
        let mut order = AckOrder::default();
        let (first, second, third) = (order.ticket(), order.ticket(), order.ticket());
        assert!(order.answer(third, "3".to_owned()).is_empty());
        assert!(order.answer(second, "2".to_owned()).is_empty());
        assert_eq!(order.answer(first, "1".to_owned()), ["1", "2", "3"]);
        let fourth = order.ticket();
        assert_eq!(order.answer(fourth, "4".to_owned()), ["4"]);
    }

    #[actix_web::test]
    async fn a_turn_waits_for_the_one_before_it_to_end() {
        let mut order = AckOrder::default();
        let mut first = order.turn();
        let mut second = order.turn();
        first.wait().await;
        let mut waiting = Box::pin(second.wait());
        assert!(
            waiting.as_mut().now_or_never().is_none(),
            "the second turn waits while the first is held"
        );
        drop(first);
        waiting.await;
    }
}
