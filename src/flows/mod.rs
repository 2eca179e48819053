//! The use cases: what weauth does, as plain functions with no HTTP in them.
//!
//! Handlers (`api/`) parse a request, call one flow and render what it returns. A flow checks
//! its inputs ([`validate`]), calls outside providers (`providers/`), and does its database work
//! through models (`models/`) inside one `db::run`/`db::transaction` call; the transaction
//! bodies are synchronous functions over a `&mut PgConnection`. Flows never import `api/` or
//! `db::schema`.
//!
//! | Flow | GoTrue |
//! | --- | --- |
//! | [`access_token_hook`] the claims a custom access-token hook may return | `tokens/service.go` `validateTokenClaims` |
//! | [`authenticate`] who the bearer of a token is | `requireAuthentication`, `requireAdmin` |
//! | [`session`] issuing sessions and refreshing them | `tokens/service.go` |
//! | [`password`] the password grant | `token.go` `ResourceOwnerPasswordGrant` |
//! | [`signup`] e-mail/phone + password sign-up | `signup.go` |
//! | [`account`] changes to a user: e-mail, phone, password, metadata, providers | `user.go` `UserUpdate`, `models/user.go` |
//! | [`linking`] external identities: find, link or create the user | `external.go` `createAccountFromExternalIdentity`, `linking.go` |
//! | [`admin`] user management with the service role | `admin.go` |
//! | [`logout`] ending sessions | `logout.go` |
//! | [`mfa`] MFA factors: enrol, challenge, verify (aal2), unenrol, admin | `mfa.go`, `admin.go` |
//! | [`wechat_mini`] the mini-program routes of MemFire's SDK | — |
//! | [`email`] codes and links by e-mail: `/recover`, `/magiclink`, `/otp`, `/invite`, `/resend`, `/reauthenticate`, `generate_link` | `mail.go`, `recover.go`, `magic_link.go`, `invite.go` |
//! | [`mail`] rendering and sending GoTrue's mails (templates, links, the global cap) | `mailer/templatemailer`, `mail.go` `sendEmail` |
//! | [`oauth`] `/authorize`, `/callback`, the PKCE grant, `linkIdentity`/`unlinkIdentity`, the WeChat website, official-account and native-app logins | `external.go`, `pkce.go`, `identity.go` |
//! | [`redirect`] where a browser may be sent after a link or an OAuth sign-in | `utilities/request.go` `IsRedirectURLValid` |
//! | [`otp`] the one-time codes of SMS and e-mail: generate, store, check | `crypto.GenerateOtp`, `verify.go` `isOtpValid` |
//! | [`phone`] codes by SMS: `/otp`, `/resend`, `/reauthenticate` for phones | `phone.go`, `otp.go` `SmsOtp` |
//! | [`phone_merge`] a fresh WeChat account merged into the one owning the phone WeChat vouches for | — |
//! | [`verify`] a code or e-mail link turned into a session | `verify.go` |
//! | [`health`] readiness (the database answers) | — |

pub mod access_token_hook;
pub mod account;
pub mod admin;
pub mod authenticate;
pub mod email;
pub mod health;
pub mod linking;
pub mod logout;
pub mod mail;
pub mod mfa;
pub mod oauth;
pub mod otp;
pub mod password;
pub mod phone;
pub mod phone_merge;
pub mod redirect;
pub mod session;
pub mod signup;
pub mod validate;
pub mod verify;
pub mod wechat_mini;

/// The caller's user agent and address, recorded on sessions and audit entries.
#[derive(Clone, Default, Debug)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Who rate limits count against: the first value of `GOTRUE_RATE_LIMIT_HEADER`, else the
    /// peer address.
    pub rate_key: String,
}
