//! E-mail senders (the e-mail issue fills this in): SMTP (`lettre`) or GoTrue's Send Email hook,
//! behind one call, with GoTrue's templates rendered before sending:
//!
//! ```text
//! pub enum Mailer { Smtp(..), Hook(..) }
//! impl Mailer { pub async fn send(&self, mail: &Mail) -> Result<(), MailError> }
//! ```
//!
//! `MailError` says what failed (rejected by the server, unavailable), never with credentials;
//! `error.rs` maps it to GoTrue's answers. Links and one-time codes come from the flows.
