//! Request streams: generated arrivals and lengths, and trace replay.
