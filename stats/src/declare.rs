//! Counters declared as data: one line per counter (variant, exported name,
//! kind, unit, help) makes a `#[repr(u8)]` enum whose methods give each
//! back, so the segment's directory, Prometheus and the reports all derive
//! from the declaration. Each crate declares the counters it counts.

/// Declares a counter enum. Each line is
/// `Variant => "name", counter|gauge, "unit", "help";`.
///
/// ```
/// ms_stats::declare_counters! {
///     /// What the example counts.
///     pub enum Example {
///         Packets => "packets_seen", counter, "packets", "Packets seen.";
///         Depth => "queue_depth", gauge, "packets", "Packets queued now.";
///     }
/// }
/// assert_eq!(Example::ALL.len(), 2);
/// assert_eq!(Example::Depth.name(), "queue_depth");
/// assert!(Example::Depth.is_gauge() && !Example::Packets.is_gauge());
/// ```
#[macro_export]
macro_rules! declare_counters {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($variant:ident => $cname:literal, $kind:ident, $unit:literal, $help:literal;)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        $vis enum $name { $(#[doc = $help] $variant,)* }

        impl $name {
            /// Every one, in slot order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];
            /// Exported name.
            pub const fn name(self) -> &'static str {
                match self { $($name::$variant => $cname,)* }
            }
            /// One-line help.
            pub const fn help(self) -> &'static str {
                match self { $($name::$variant => $help,)* }
            }
            /// What one unit counts.
            pub const fn unit(self) -> &'static str {
                match self { $($name::$variant => $unit,)* }
            }
            /// True for a current value, false for a monotonic count.
            pub const fn is_gauge(self) -> bool {
                match self { $($name::$variant => $crate::declare_counters!(@gauge $kind),)* }
            }
        }
    };
    (@gauge counter) => { false };
    (@gauge gauge) => { true };
}
