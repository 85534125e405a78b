//! Example plugin (being written).
