//! The plugin registry (being written).
