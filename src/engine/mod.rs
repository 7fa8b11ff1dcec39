//! The discrete-event engine: integer time, the event queue, seeded random streams.
//!
//! The engine knows nothing of GPUs or requests: a simulation owns an
//! [`queue::EventQueue`] of its own closed event `enum`, pops the earliest event,
//! handles it, and schedules new ones.

mod heap;
pub mod queue;
pub mod rng;
pub mod time;

pub use queue::{EventId, EventQueue};
pub use time::SimTime;
