//! Password hashing. New hashes are argon2id (PHC strings GoTrue can also verify); bcrypt
//! hashes written by GoTrue (`$2a$`, `$2b$`, `$2y$`) are verified so migrated users can sign in,
//! and are upgraded to argon2id after a successful sign-in.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::PasswordHashConfig;
use crate::error::{ApiError, ApiResult};

/// GoTrue's upper bound (bcrypt ignores bytes past 72), enforced for every new password.
const MAX_PASSWORD_BYTES: usize = 72;

fn hasher(cfg: &PasswordHashConfig) -> ApiResult<Argon2<'static>> {
    let params = Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with argon2id. CPU-heavy: call it from a blocking thread.
pub fn hash(password: &str, cfg: &PasswordHashConfig) -> ApiResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(hasher(cfg)?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| ApiError::internal(e.to_string()))?
        .to_string())
}

/// Checks a password against an argon2 or bcrypt hash. Unknown formats never match.
pub fn verify(password: &str, hash: &str) -> bool {
    if hash.starts_with("$argon2") {
        PasswordHash::new(hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    } else if hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$") {
        bcrypt::verify(password, hash).unwrap_or(false)
    } else {
        false
    }
}

/// True for hashes weauth would not write today (bcrypt, argon2i, other argon2 costs).
pub fn needs_rehash(hash: &str, cfg: &PasswordHashConfig) -> bool {
    let expected = format!(
        "$argon2id$v=19$m={},t={},p={}$",
        cfg.memory_kib, cfg.iterations, cfg.parallelism
    );
    !hash.starts_with(&expected)
}

/// A hash to verify against when the user does not exist, so "no such user" takes as long as
/// "wrong password" and the two cannot be told apart by timing.
pub fn dummy_hash(cfg: &PasswordHashConfig) -> ApiResult<String> {
    hash("weauth-dummy-password-for-timing", cfg)
}

/// GoTrue's policy (`internal/api/password.go`): at most 72 bytes (400), at least
/// `GOTRUE_PASSWORD_MIN_LENGTH` characters (422 `weak_password`).
pub fn check_strength(password: &str, min_length: usize) -> ApiResult<()> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::validation(format!(
            "Password cannot be longer than {MAX_PASSWORD_BYTES} characters"
        )));
    }
    if password.chars().count() < min_length {
        return Err(ApiError::weak_password(
            format!("Password should be at least {min_length} characters."),
            vec!["length"],
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHashConfig {
        PasswordHashConfig {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn argon2id_round_trip() {
        let h = hash("correct horse", &cheap()).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{h}");
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!needs_rehash(&h, &cheap()));
    }

    #[test]
    fn gotrue_bcrypt_hashes_verify_and_need_upgrade() {
        let h = bcrypt::hash("migrated-password", 4)
            .unwrap()
            .replacen("$2b$", "$2a$", 1);
        assert!(verify("migrated-password", &h));
        assert!(!verify("other", &h));
        assert!(needs_rehash(&h, &cheap()));
    }

    #[test]
    fn unknown_or_empty_hashes_never_match() {
        assert!(!verify("", ""));
        assert!(!verify("x", "plaintext"));
        assert!(!verify("x", "$argon2id$garbage"));
    }

    #[test]
    fn strength_policy() {
        assert!(check_strength("123456", 6).is_ok());
        let e = check_strength("12345", 6).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        assert_eq!(e.weak_password_reasons, vec!["length"]);
        assert_eq!(
            check_strength(&"x".repeat(73), 6)
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
    }
}

/// A job for the hashing threads.
type Job = Box<dyn FnOnce() + Send>;

/// A few dedicated threads for password hashing (one per core by default). argon2id needs
/// `WEAUTH_ARGON2_MEMORY_KIB` of memory per run: running hashes on the general blocking pool let
/// every waiting request allocate its own buffer (the benchmark saw 9 GB RSS at 64 concurrent
/// sign-ins). Here at most `threads` hashes run at once, each thread reuses its allocator arena,
/// and further requests queue.
pub struct HashPool {
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<Job>>,
}

impl HashPool {
    pub fn new(threads: usize) -> std::io::Result<HashPool> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("weauth-hash-{i}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for the next job, not while running it.
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })?;
        }
        Ok(HashPool {
            jobs: std::sync::Mutex::new(tx),
        })
    }

    /// Runs `f` on a hashing thread and waits for its result without blocking the executor.
    pub async fn run<T, F>(&self, f: F) -> ApiResult<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs
            .lock()
            .map_err(|_| ApiError::internal("hash pool lock poisoned"))?
            .send(job)
            .map_err(|_| ApiError::internal("hash pool stopped"))?;
        rx.await.map_err(|_| ApiError::internal("hash job dropped"))
    }
}
