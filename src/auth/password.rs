//! Password hashing. New hashes are argon2id (PHC strings GoTrue can also verify); bcrypt
//! hashes written by GoTrue (`$2a$`, `$2b$`, `$2y$`) are verified so migrated users can sign in,
//! and are upgraded to argon2id after a successful sign-in.
//!
//! PHC strings are parsed, validated and written with RustCrypto's `argon2`/`password-hash`;
//! the argon2 computation itself runs on `argon2_rust`, which picks an AVX-512, AVX2, SSE2 or
//! NEON fill at run time (the binary stays portable) and is about twice as fast on this
//! benchmark's machine (bench/analysis.md, "Password hashing: argon2 floor"). Its tags are
//! bit-exact with the reference implementation and with the `argon2` crate (tested below).

use std::cell::RefCell;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Params, Version};

use crate::config::PasswordHashConfig;
use crate::error::{ApiError, ApiResult};

/// GoTrue's upper bound (bcrypt ignores bytes past 72), enforced for every new password.
const MAX_PASSWORD_BYTES: usize = 72;

/// A hashing thread keeps its argon2 working memory up to this size (64 MiB, in 1 KiB blocks)
/// between runs; larger costs (imported hashes) get a buffer for that run only.
const MAX_KEPT_BLOCKS: usize = 64 * 1024;

thread_local! {
    /// argon2's working memory (`m` KiB per run), kept between runs on [`HashPool`] threads
    /// and `None` on every other thread. Allocating it per run let glibc's arenas fragment
    /// and grow to hundreds of MiB under load; reusing one arena per thread bounds the
    /// hashing memory at threads × m. The arena is wiped after every run.
    static KEPT_MEMORY: RefCell<Option<argon2_rust::Hasher>> = const { RefCell::new(None) };
}

/// The argon2 costs of new hashes.
fn new_params(cfg: &PasswordHashConfig) -> ApiResult<Params> {
    Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The `argon2_rust` configuration for `algorithm`, `version` and the costs of `p`, with an
/// `out_len`-byte tag (one thread fills the lanes: `p` changes the tag, the number of threads
/// does not).
fn engine(
    algorithm: Algorithm,
    version: Version,
    p: &Params,
    out_len: usize,
) -> Result<argon2_rust::Argon2, argon2_rust::Error> {
    use argon2_rust::params::{Memory, TagLen};
    let params = argon2_rust::Params::builder()
        .memory(Memory::kib(p.m_cost().into()))
        .passes(p.t_cost())
        .lanes(p.p_cost())
        .threads(1)
        .tag_len(TagLen::bytes(out_len as u64))
        .build()?;
    let algorithm = match algorithm {
        Algorithm::Argon2d => argon2_rust::Algorithm::Argon2d,
        Algorithm::Argon2i => argon2_rust::Algorithm::Argon2i,
        Algorithm::Argon2id => argon2_rust::Algorithm::Argon2id,
    };
    let version = match version {
        Version::V0x10 => argon2_rust::Version::V0x10,
        Version::V0x13 => argon2_rust::Version::V0x13,
    };
    Ok(argon2_rust::Argon2::new(algorithm, version, params))
}

/// Runs argon2 into `out` (the associated data of the PHC string's `data=` included, as the
/// `argon2` crate does), on this thread's kept memory when it has some.
fn argon2_into(
    (algorithm, version, params): (Algorithm, Version, &Params),
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2_rust::Error> {
    let engine = engine(algorithm, version, params, out.len())?;
    let ad = params.data();
    KEPT_MEMORY.with(|kept| match kept.borrow_mut().as_mut() {
        Some(kept) if params.block_count() <= MAX_KEPT_BLOCKS => {
            kept.set_argon2(engine);
            kept.hash_into_with_ad(password, salt, &[], ad, out)
        }
        _ => engine.hash_into_with_ad(password, salt, &[], ad, out),
    })
}

/// argon2's `len`-byte output for `password` and a PHC salt, on this thread's kept memory: what
/// both [`hash`] and verification compute.
fn argon2_output(
    cost: (Algorithm, Version, &Params),
    password: &str,
    salt: Salt<'_>,
    len: usize,
) -> argon2::password_hash::Result<Output> {
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    Output::init_with(len, |out| {
        argon2_into(cost, password.as_bytes(), salt_bytes, out)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
}

/// Hashes a password with argon2id. CPU-heavy: call it on the [`HashPool`].
pub fn hash(password: &str, cfg: &PasswordHashConfig) -> ApiResult<String> {
    let internal = |e: &dyn std::fmt::Display| ApiError::internal(e.to_string());
    let params = new_params(cfg)?;
    let salt = SaltString::generate(&mut OsRng);
    let cost = (Algorithm::Argon2id, Version::V0x13, &params);
    let output = argon2_output(cost, password, salt.as_salt(), Params::DEFAULT_OUTPUT_LEN)
        .map_err(|e| internal(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| internal(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Checks a password against an argon2 or bcrypt hash. Unknown formats never match.
pub fn verify(password: &str, hash: &str) -> bool {
    if hash.starts_with("$argon2") {
        verify_argon2(password, hash).unwrap_or(false)
    } else if hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$") {
        bcrypt::verify(password, hash).unwrap_or(false)
    } else {
        false
    }
}

/// argon2 verification as `argon2::PasswordVerifier` does it (algorithm, version and costs from
/// the PHC string, constant-time comparison of the outputs), but on this thread's kept memory.
fn verify_argon2(password: &str, hash: &str) -> Option<bool> {
    let parsed = PasswordHash::new(hash).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).ok()?;
    let (salt, expected) = (parsed.salt?, parsed.hash?);
    let computed = argon2_output(
        (algorithm, version, &params),
        password,
        salt,
        expected.len(),
    )
    .ok()?;
    // `Output`'s equality is constant-time.
    Some(computed == expected)
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
                .spawn(move || {
                    KEPT_MEMORY.with(|kept| {
                        *kept.borrow_mut() = Some(
                            argon2_rust::Argon2::new(
                                argon2_rust::Algorithm::Argon2id,
                                argon2_rust::Version::V0x13,
                                argon2_rust::Params::DEFAULT,
                            )
                            .hasher(),
                        )
                    });
                    loop {
                        // The lock is held only while waiting for the next job, not while running it.
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::Argon2;

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
    fn matches_the_argon2_crate_and_the_reference_implementation() {
        use argon2::{PasswordHasher, PasswordVerifier};
        // Ours verifies the crate's hashes, the crate verifies ours.
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            new_params(&cheap()).unwrap(),
        )
        .hash_password(b"pw-1", &salt)
        .unwrap()
        .to_string();
        assert!(verify("pw-1", &theirs));
        assert!(!verify("pw-2", &theirs));
        let ours = hash("pw-1", &cheap()).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"pw-1", &parsed).is_ok());
        // The reference C implementation's README example (argon2i, 64 MiB, 4 lanes, 24 bytes).
        let reference =
            "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        assert!(verify("password", reference));
        assert!(!verify("passwore", reference));
    }

    #[test]
    fn the_engine_is_bit_exact_with_the_argon2_crate() {
        use argon2::{AssociatedData, ParamsBuilder, PasswordHasher};
        // Every algorithm and version, several lanes, m not a multiple of 4p (rounded down the
        // same way), other tag lengths and associated data (`data=`): the `argon2` crate's PHC
        // strings verify on the engine, and a wrong password does not.
        let salt = SaltString::generate(&mut OsRng);
        let cases = [
            (Algorithm::Argon2id, Version::V0x13, 64, 1, 1, 32, &b""[..]),
            (
                Algorithm::Argon2id,
                Version::V0x13,
                1030,
                2,
                3,
                16,
                &b""[..],
            ),
            (Algorithm::Argon2i, Version::V0x13, 256, 3, 2, 64, &b""[..]),
            (
                Algorithm::Argon2d,
                Version::V0x13,
                128,
                1,
                1,
                32,
                &b"ad"[..],
            ),
            (Algorithm::Argon2id, Version::V0x10, 96, 2, 1, 32, &b""[..]),
            (
                Algorithm::Argon2id,
                Version::V0x13,
                512,
                1,
                2,
                24,
                &b"assoc-data"[..],
            ),
        ];
        for (algorithm, version, m, t, p, len, data) in cases {
            let mut params = ParamsBuilder::new();
            params.m_cost(m).t_cost(t).p_cost(p).output_len(len);
            if !data.is_empty() {
                params.data(AssociatedData::new(data).unwrap());
            }
            let argon = Argon2::new(algorithm, version, params.build().unwrap());
            let theirs = argon.hash_password(b"pw-1", &salt).unwrap().to_string();
            assert!(verify("pw-1", &theirs), "{theirs}");
            assert!(!verify("pw-2", &theirs), "{theirs}");
        }
    }

    #[test]
    fn hashing_threads_reuse_memory_across_costs() {
        let pool = HashPool::new(1).unwrap();
        let small = cheap();
        let large = PasswordHashConfig {
            memory_kib: 4096,
            ..cheap()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            // Grow the kept buffer, then run a smaller cost on it and a larger one again.
            for cfg in [small.clone(), large.clone(), small.clone(), large.clone()] {
                let (h, ok, wrong, kept) = pool
                    .run(move || {
                        let h = hash("pw", &cfg).unwrap();
                        let kept =
                            KEPT_MEMORY.with(|k| k.borrow().as_ref().map(|h| h.reserved_blocks()));
                        (h.clone(), verify("pw", &h), verify("px", &h), kept)
                    })
                    .await
                    .unwrap();
                assert!(ok && !wrong, "{h}");
                assert!(kept.unwrap() >= 1024, "the hashing thread keeps its memory");
                assert!(PasswordHash::new(&h).is_ok());
            }
        });
        assert!(
            KEPT_MEMORY.with(|k| k.borrow().is_none()),
            "other threads keep nothing"
        );
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
