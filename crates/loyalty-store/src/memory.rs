//! The in-memory store: for tests of the layers above, with the same semantics as every other
//! backend. (To be written: see issue 3.)
