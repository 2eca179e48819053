//! End-to-end tests of the SMS clients against real HTTP servers that check the signatures.
