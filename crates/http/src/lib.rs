//! The HTTP face of berth (to be written).
