//! Unit tests of the WeChat emulator's pure pieces and one end-to-end run over HTTP.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::phone::split_e164;
use super::state::{
    openid, unionid, Api, Failure, State, WxError, CODE_TTL, TOKEN_OVERLAP, TOKEN_TTL,
};
use super::{crypto, wxacode};
use crate::config::{EmulatorConfig, Secret};
use crate::start;

// ---- identities ---------------------------------------------------------------------------

#[test]
fn openid_is_stable_per_app_and_user_and_looks_real() {
    let a = openid("wxapp1", "alice");
    assert_eq!(a, openid("wxapp1", "alice"));
    assert_ne!(a, openid("wxapp2", "alice"), "openids differ across apps");
    assert_ne!(a, openid("wxapp1", "bob"));
    assert_eq!(a.len(), 28);
    assert!(a.starts_with('o'));
    assert!(
        a.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{a}"
    );
}

#[test]
fn unionid_is_shared_across_apps_but_not_users() {
    let u = unionid("alice");
    assert_eq!(u.len(), 28);
    assert!(u.starts_with('o'));
    assert_eq!(u, unionid("alice"));
    assert_ne!(u, unionid("bob"));
    assert_ne!(u, openid("wxapp1", "alice"));
}

// ---- phone numbers ------------------------------------------------------------------------

#[test]
fn country_code_is_split_from_e164() {
    let cases = [
        ("+8613800138000", "86", "13800138000", "13800138000"),
        ("+14155550100", "1", "4155550100", "+1 4155550100"),
        ("+85261234567", "852", "61234567", "+852 61234567"),
        ("+853 6612 3456", "853", "66123456", "+853 66123456"),
        ("+886912345678", "886", "912345678", "+886 912345678"),
        ("+447911123456", "44", "7911123456", "+44 7911123456"),
        ("+79161234567", "7", "9161234567", "+7 9161234567"),
        ("+6591234567", "65", "91234567", "+65 91234567"),
    ];
    for (input, cc, pure, full) in cases {
        let p = split_e164(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(
            (p.country_code.as_str(), p.pure.as_str()),
            (cc, pure),
            "{input}"
        );
        assert_eq!(p.phone_number(), full, "{input}");
    }
}

#[test]
fn bad_phones_are_refused() {
    for bad in [
        "13800138000",
        "+",
        "+86",
        "+861380013800",
        "+86abc00138000",
        "+999123456789",
        "+1234567890123456",
    ] {
        assert!(split_e164(bad).is_err(), "{bad} should be refused");
    }
}

// ---- getwxacodeunlimit validation and rendering --------------------------------------------

#[test]
fn scene_rules_match_wechat() {
    assert_eq!(wxacode::validate_scene("id=42&from=share"), Ok(()));
    assert_eq!(
        wxacode::validate_scene("!#$&'()*+,/:;=?@-._~09AZaz"),
        Ok(())
    );
    assert_eq!(wxacode::validate_scene(&"a".repeat(32)), Ok(()));
    assert_eq!(wxacode::validate_scene(&"a".repeat(33)), Err(40169));
    assert_eq!(wxacode::validate_scene(""), Err(40169));
    assert_eq!(wxacode::validate_scene("a b"), Err(40129));
    assert_eq!(wxacode::validate_scene("100%"), Err(40129));
    assert_eq!(wxacode::validate_scene("中文"), Err(40129));
}

#[test]
fn wxacode_body_rules_match_wechat() {
    let parse = |v: Value| wxacode::parse_request(&v).map(|r| r.width);
    assert_eq!(parse(json!({"scene": "x"})), Ok(430));
    assert_eq!(parse(json!({"scene": 12345, "width": 280})), Ok(280));
    assert_eq!(parse(json!({"page": "pages/index/index"})), Err(40169));
    assert_eq!(parse(json!(["scene"])), Err(40169));
    assert_eq!(parse(json!({"scene": "x", "width": 279})), Err(40097));
    assert_eq!(parse(json!({"scene": "x", "width": 1281})), Err(40097));
    assert_eq!(parse(json!({"scene": "x", "env_version": ""})), Err(40097));
    assert_eq!(
        parse(json!({"scene": "x", "env_version": "trail"})),
        Err(40097)
    );
    assert_eq!(
        parse(json!({"scene": "x", "env_version": "develop"})),
        Ok(430)
    );
    assert_eq!(parse(json!({"scene": "x", "page": "/pages/a"})), Err(41030));
    assert_eq!(
        parse(json!({"scene": "x", "page": "pages/a?x=1"})),
        Err(41030)
    );
    let r = wxacode::parse_request(
        &json!({"scene": "x", "line_color": {"r": 255, "g": "16", "b": 300}}),
    );
    assert_eq!(r.map(|r| r.line_color), Ok([255, 16, 255]));
}

#[test]
fn wxacode_renders_a_real_qr_png() {
    let req = wxacode::parse_request(&json!({"scene": "id=7", "page": "pages/a/b", "width": 300}))
        .unwrap();
    assert_eq!(
        wxacode::content("wxapp1", &req),
        "https://weauth.emulator/wxapp1?page=pages%2Fa%2Fb&scene=id%3D7"
    );
    let png_bytes = wxacode::render_png("wxapp1", &req).unwrap();
    assert_eq!(&png_bytes[..4], &[0x89, 0x50, 0x4E, 0x47]);
    let mut reader = png::Decoder::new(png_bytes.as_slice()).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(
        (info.width, info.height, info.color_type),
        (300, 300, png::ColorType::Rgb)
    );
    // Corner pixel is quiet zone (white); the top-left finder pattern starts right after it.
    let modules = qrcode::QrCode::new(wxacode::content("wxapp1", &req).as_bytes())
        .unwrap()
        .width();
    let first_module_px = (4 * 300usize).div_ceil(modules + 8);
    let px = |x: usize, y: usize| &buf[(y * 300 + x) * 3..(y * 300 + x) * 3 + 3];
    assert_eq!(px(0, 0), [255, 255, 255]);
    assert_eq!(px(first_module_px, first_module_px), [0, 0, 0]);

    let hyaline = wxacode::parse_request(
        &json!({"scene": "id=7", "is_hyaline": true, "line_color": {"r": 200, "g": 0, "b": 0}}),
    )
    .unwrap();
    let png_bytes = wxacode::render_png("wxapp1", &hyaline).unwrap();
    let mut reader = png::Decoder::new(png_bytes.as_slice()).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.color_type), (430, png::ColorType::Rgba));
    assert_eq!(buf[3], 0, "background is transparent");
    assert!(
        buf.chunks_exact(4).any(|p| p == [200, 0, 0, 255]),
        "line colour is used"
    );
}

// ---- legacy crypto: WeChat's public test vector ------------------------------------------

// WeChat's public test vector (aes-sample.zip, reproduced in easywechat and WxJava tests).
const VECTOR_APP_ID: &str = "wx4f4bc4dec97d474b";
const VECTOR_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
const VECTOR_IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
const VECTOR_ENCRYPTED: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";
const VECTOR_PLAIN: &str = r#"{"openId":"oGZUI0egBJY1zhBYw2KhdUfwVJJE","nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/aSKcBBPpibyKNicHNTMM0qJVh8Kjgiak2AHWr8MHM4WgMEm7GFhsf8OYrySdbvAMvTsw3mo8ibKicsnfN5pRjl1p8HQ/0","unionId":"ocMvos6NjeKLIBqg5Mr9QjxrP1FA","watermark":{"timestamp":1477314187,"appid":"wx4f4bc4dec97d474b"}}"#;

/// What weauth does with `encryptedData` (src/wechat/crypto.rs), minus its error types: the
/// emulator cannot use weauth's code, so its tests carry the receiving side themselves.
fn decrypt(session_key: &str, encrypted_data: &str, iv: &str, app_id: &str) -> Value {
    use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
    let key: [u8; 16] = STANDARD.decode(session_key).unwrap().try_into().unwrap();
    let iv: [u8; 16] = STANDARD.decode(iv).unwrap().try_into().unwrap();
    let plain = cbc::Decryptor::<aes::Aes128>::new(&key.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(&STANDARD.decode(encrypted_data).unwrap())
        .unwrap();
    let value: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(value["watermark"]["appid"], app_id, "{value}");
    value
}

#[test]
fn encryption_reproduces_the_public_vector() {
    let iv: [u8; 16] = STANDARD.decode(VECTOR_IV).unwrap().try_into().unwrap();
    assert_eq!(
        crypto::encrypt_with_iv(VECTOR_KEY, VECTOR_PLAIN.as_bytes(), &iv).unwrap(),
        VECTOR_ENCRYPTED
    );
    let plain = decrypt(VECTOR_KEY, VECTOR_ENCRYPTED, VECTOR_IV, VECTOR_APP_ID);
    assert_eq!(plain, serde_json::from_str::<Value>(VECTOR_PLAIN).unwrap());
}

#[test]
fn encrypt_round_trips_with_a_fresh_iv() {
    let payload = br#"{"hello":"world","watermark":{"appid":"wx4f4bc4dec97d474b","timestamp":1}}"#;
    let (data, iv) = crypto::encrypt(VECTOR_KEY, payload).unwrap();
    assert_eq!(STANDARD.decode(&iv).unwrap().len(), 16);
    assert_eq!(
        decrypt(VECTOR_KEY, &data, &iv, VECTOR_APP_ID)["hello"],
        "world"
    );
    let (again, other_iv) = crypto::encrypt(VECTOR_KEY, payload).unwrap();
    assert_ne!(
        (again, other_iv),
        (data, iv),
        "every payload gets its own iv"
    );
    assert!(crypto::encrypt("not base64!", b"x").is_err());
    assert!(
        crypto::encrypt("c2hvcnQ=", b"x").is_err(),
        "a key must be 16 bytes"
    );
}

#[test]
fn signature_matches_the_documented_example() {
    let raw = r#"{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}"#;
    assert_eq!(
        crypto::signature(raw, "HyVFkGl5F5OQWJZZaNzBBg=="),
        "75e81ceda165f4ffa64f4068af58c64b8f54b88c"
    );
}

// ---- state rules with a controllable clock ------------------------------------------------

#[test]
fn login_codes_expire_belong_to_one_app_and_work_once() {
    let mut s = State::default();
    let t0 = Instant::now();
    let code = s.issue_login_code("wxa", "alice", true, t0);
    assert_eq!(code.len(), 32);
    assert!(code.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        s.exchange_login_code("wxb", &code, t0).unwrap_err(),
        WxError::new(40029)
    );
    let first = s.exchange_login_code("wxa", &code, t0).unwrap();
    assert_eq!(first.openid, openid("wxa", "alice"));
    assert_eq!(first.unionid.as_deref(), Some(unionid("alice").as_str()));
    assert_eq!(STANDARD.decode(&first.session_key).unwrap().len(), 16);
    assert_eq!(
        s.exchange_login_code("wxa", &code, t0).unwrap_err(),
        WxError::new(40163)
    );

    let second = s.issue_login_code("wxa", "alice", false, t0);
    let login = s
        .exchange_login_code("wxa", &second, t0 + Duration::from_secs(299))
        .unwrap();
    assert_eq!(
        login.session_key, first.session_key,
        "a new login keeps the user's session key, as WeChat does"
    );
    assert_eq!(login.unionid, None);
    assert_eq!(
        s.session("wxa", "alice").map(|x| x.session_key.clone()),
        Some(login.session_key)
    );

    let late = s.issue_login_code("wxa", "bob", true, t0);
    assert_eq!(
        s.exchange_login_code("wxa", &late, t0 + CODE_TTL)
            .unwrap_err(),
        WxError::new(40029)
    );
    assert_eq!(s.stats.codes_exchanged, 2);
}

#[test]
fn cgi_bin_token_overlaps_then_revokes_the_previous_token() {
    let mut s = State::default();
    let t0 = Instant::now();
    let (t1, expires_in) = s.issue_token("wxa", t0);
    assert_eq!(expires_in, 7200);
    assert!(t1.len() > 100, "{t1}");
    let (t2, _) = s.issue_token("wxa", t0 + Duration::from_secs(10));
    assert_ne!(t1, t2);
    let during = t0 + Duration::from_secs(10) + TOKEN_OVERLAP - Duration::from_secs(1);
    assert_eq!(s.check_token(Some(&t1), during), Ok("wxa".to_string()));
    let after = t0 + Duration::from_secs(10) + TOKEN_OVERLAP;
    assert_eq!(s.check_token(Some(&t1), after), Err(WxError::new(40001)));
    assert_eq!(s.check_token(Some(&t2), after), Ok("wxa".to_string()));
    assert_eq!(
        s.check_token(Some(&t2), t0 + Duration::from_secs(10) + TOKEN_TTL),
        Err(WxError::new(42001))
    );
    assert_eq!(s.check_token(None, t0), Err(WxError::new(41001)));
    assert_eq!(s.check_token(Some("nope"), t0), Err(WxError::new(40001)));
}

#[test]
fn stable_token_is_cached_rotated_and_force_refreshed() {
    let mut s = State::default();
    let t0 = Instant::now();
    let (a, _) = s.stable_token("wxa", false, t0);
    let (again, remaining) = s.stable_token("wxa", false, t0 + Duration::from_secs(100));
    assert_eq!((again.as_str(), remaining), (a.as_str(), 7100));
    // /cgi-bin/token is independent: issuing one does not touch the stable token.
    let (plain, _) = s.issue_token("wxa", t0);
    assert_ne!(plain, a);
    assert_eq!(
        s.stable_token("wxa", false, t0 + Duration::from_secs(101))
            .0,
        a
    );
    // Less than 5 minutes left: a new token, the old one still works until it expires.
    let near_end = t0 + TOKEN_TTL - Duration::from_secs(200);
    let (b, b_in) = s.stable_token("wxa", false, near_end);
    assert_ne!(b, a);
    assert_eq!(b_in, 7200);
    assert_eq!(s.check_token(Some(&a), near_end), Ok("wxa".into()));
    // force_refresh: new token, previous one dead at once.
    let (c, _) = s.stable_token("wxa", true, near_end);
    assert_ne!(c, b);
    assert_eq!(s.check_token(Some(&b), near_end), Err(WxError::new(40001)));
    assert_eq!(s.stats.access_tokens_issued, 4);
    assert_eq!(
        s.expire_tokens(Some("wxa"), near_end),
        3,
        "a, plain and c were still live"
    );
    assert_eq!(s.check_token(Some(&c), near_end), Err(WxError::new(42001)));
    assert_ne!(
        s.stable_token("wxa", false, near_end).0,
        c,
        "an expired stable token is replaced"
    );
}

#[test]
fn phone_codes_are_single_use_and_bound_to_the_app() {
    let mut s = State::default();
    let t0 = Instant::now();
    let phone = split_e164("+8613800138000").unwrap();
    let code = s.issue_phone_code("wxa", phone.clone(), t0);
    assert_eq!(
        s.redeem_phone_code("wxb", &code, t0).unwrap_err(),
        WxError::new(40013)
    );
    assert_eq!(
        s.redeem_phone_code("wxa", &code, t0).unwrap().0,
        phone,
        "40013 did not consume the code"
    );
    assert_eq!(
        s.redeem_phone_code("wxa", &code, t0).unwrap_err(),
        WxError::new(40029)
    );
    let old = s.issue_phone_code("wxa", phone, t0);
    assert_eq!(
        s.redeem_phone_code("wxa", &old, t0 + CODE_TTL).unwrap_err(),
        WxError::new(40029)
    );
}

#[test]
fn injected_failures_are_counted_and_run_out() {
    let mut s = State::default();
    let f = Failure {
        errcode: Some(-1),
        times: 2,
        delay: Duration::ZERO,
        garbage: false,
        http_status: 200,
    };
    s.push_failure(Api::Token, f.clone());
    assert_eq!(s.begin_call(Api::Jscode2session), None);
    assert_eq!(s.begin_call(Api::Token).map(|f| f.errcode), Some(Some(-1)));
    assert_eq!(s.begin_call(Api::Token).map(|f| f.errcode), Some(Some(-1)));
    assert_eq!(s.begin_call(Api::Token), None);
    assert_eq!(
        (
            s.stats.token_calls,
            s.stats.failures_injected,
            s.stats.jscode2session_calls
        ),
        (3, 2, 1)
    );
    s.reset();
    assert_eq!(s.stats.token_calls, 0);
}

// ---- end to end over HTTP -----------------------------------------------------------------

fn test_config() -> EmulatorConfig {
    EmulatorConfig {
        wechat_apps: [("wxtest1", "secret1"), ("wxtest2", "secret2")]
            .into_iter()
            .map(|(id, secret)| (id.to_string(), Secret::new(secret)))
            .collect(),
        ..EmulatorConfig::default()
    }
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    async fn login_code(&self, app: &str, user: &str) -> String {
        let (status, body) = self
            .post("/emulator/login-code", json!({"appid": app, "user": user}))
            .await;
        assert_eq!(status, 200, "{body}");
        body["code"].as_str().unwrap().to_string()
    }

    async fn exchange(&self, app: &str, secret: &str, code: &str) -> Value {
        let path = format!("/sns/jscode2session?appid={app}&secret={secret}&js_code={code}&grant_type=authorization_code");
        let (status, body) = self.get(&path).await;
        assert_eq!(status, 200, "WeChat answers 200 even for errors: {body}");
        body
    }

    async fn stable_token(&self, app: &str, secret: &str, force: bool) -> Value {
        let body = json!({"grant_type": "client_credential", "appid": app, "secret": secret, "force_refresh": force});
        self.post("/cgi-bin/stable_token", body).await.1
    }
}

fn errcode(body: &Value) -> i64 {
    body["errcode"].as_i64().unwrap_or(0)
}

#[actix_web::test]
async fn emulator_serves_wechat_and_control_apis() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = start(test_config(), listener).unwrap();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let c = Client {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
    };

    // login-code → jscode2session: success without errcode, then 40163, then 40029.
    let code = c.login_code("wxtest1", "alice").await;
    let body = c.exchange("wxtest1", "secret1", &code).await;
    assert!(body.get("errcode").is_none(), "{body}");
    assert_eq!(body["openid"], openid("wxtest1", "alice"));
    assert_eq!(body["unionid"], unionid("alice"));
    let session_key = body["session_key"].as_str().unwrap().to_string();
    assert_eq!(STANDARD.decode(&session_key).unwrap().len(), 16);
    let reused = c.exchange("wxtest1", "secret1", &code).await;
    assert_eq!(errcode(&reused), 40163);
    assert!(
        reused["errmsg"].as_str().unwrap().contains("rid: "),
        "{reused}"
    );
    assert_eq!(
        errcode(
            &c.exchange("wxtest1", "secret1", "0123456789abcdef0123456789abcdef")
                .await
        ),
        40029
    );
    let other_app = c.login_code("wxtest1", "alice").await;
    assert_eq!(
        errcode(&c.exchange("wxtest2", "secret2", &other_app).await),
        40029
    );
    assert_eq!(
        errcode(&c.exchange("wxtest1", "wrong", &other_app).await),
        40125
    );
    assert_eq!(
        errcode(&c.exchange("wxnope", "secret1", &other_app).await),
        40013
    );
    assert_eq!(
        errcode(
            &c.get("/sns/jscode2session?appid=wxtest1&secret=secret1")
                .await
                .1
        ),
        41008
    );
    let (status, body) = c
        .post(
            &format!("/sns/jscode2session?appid=wxtest1&secret=secret1&js_code={other_app}"),
            json!({}),
        )
        .await;
    assert_eq!((status, errcode(&body)), (200, 41002));
    let no_union = c
        .post(
            "/emulator/login-code",
            json!({"appid": "wxtest2", "user": "alice", "unionid": false}),
        )
        .await
        .1;
    let body = c
        .exchange("wxtest2", "secret2", no_union["code"].as_str().unwrap())
        .await;
    assert!(
        body.get("unionid").is_none() && body["openid"] == openid("wxtest2", "alice"),
        "{body}"
    );

    // Legacy getUserInfo with alice's current session key in wxtest1.
    let info = c.post("/emulator/user-info", json!({"appid": "wxtest1", "user": "alice", "userInfo": {"nickName": "Alice", "gender": 2}})).await.1;
    let raw = info["rawData"].as_str().unwrap();
    assert_eq!(info["signature"], crypto::signature(raw, &session_key));
    let plain = decrypt(
        &session_key,
        info["encryptedData"].as_str().unwrap(),
        info["iv"].as_str().unwrap(),
        "wxtest1",
    );
    assert_eq!(
        (&plain["openId"], &plain["unionId"], &plain["nickName"]),
        (
            &json!(openid("wxtest1", "alice")),
            &json!(unionid("alice")),
            &json!("Alice")
        )
    );
    assert_eq!(plain["watermark"]["appid"], "wxtest1");
    let (status, _) = c
        .post(
            "/emulator/user-info",
            json!({"appid": "wxtest1", "user": "nobody"}),
        )
        .await;
    assert_eq!(status, 400);

    // stable_token: cached, counted; not-JSON body is 47001.
    let first = c.stable_token("wxtest1", "secret1", false).await;
    let second = c.stable_token("wxtest1", "secret1", false).await;
    let token = first["access_token"].as_str().unwrap().to_string();
    assert_eq!(second["access_token"], first["access_token"]);
    assert!(
        first.get("errcode").is_none() && first["expires_in"].as_u64().unwrap() > 7000,
        "{first}"
    );
    let resp = c
        .http
        .post(format!("{}/cgi-bin/stable_token", c.base))
        .body("grant_type=client_credential")
        .send()
        .await
        .unwrap();
    assert_eq!(errcode(&resp.json().await.unwrap()), 47001);
    let stats = c.get("/emulator/stats").await.1;
    assert_eq!(
        (
            stats["stable_token_calls"].as_u64(),
            stats["access_tokens_issued"].as_u64()
        ),
        (Some(3), Some(1))
    );
    assert_eq!(stats["codes_exchanged"].as_u64(), Some(2));

    // getuserphonenumber with a phone-button code; single use; token checks.
    let phone_code = c
        .post(
            "/emulator/phone-code",
            json!({"appid": "wxtest1", "phone": "+8613800138000"}),
        )
        .await
        .1["code"]
        .clone();
    let phone_url = format!("/wxa/business/getuserphonenumber?access_token={token}");
    let body = c.post(&phone_url, json!({"code": phone_code})).await.1;
    assert_eq!(errcode(&body), 0, "{body}");
    assert_eq!(body["phone_info"]["phoneNumber"], "13800138000");
    assert_eq!(body["phone_info"]["countryCode"], "86");
    assert_eq!(body["phone_info"]["watermark"]["appid"], "wxtest1");
    assert_eq!(
        errcode(&c.post(&phone_url, json!({"code": phone_code})).await.1),
        40029
    );
    assert_eq!(
        errcode(
            &c.post("/wxa/business/getuserphonenumber", json!({"code": "x"}))
                .await
                .1
        ),
        41001
    );
    assert_eq!(
        errcode(
            &c.post(
                "/wxa/business/getuserphonenumber?access_token=bogus",
                json!({"code": "x"})
            )
            .await
            .1
        ),
        40001
    );
    let (status, _) = c
        .post(
            "/emulator/phone-code",
            json!({"appid": "wxtest1", "phone": "13800138000"}),
        )
        .await;
    assert_eq!(status, 400);

    // A delay-only instruction slows the call down, then answers normally.
    let (status, _) = c
        .post(
            "/emulator/fail-next",
            json!({"api": "stable_token", "delay_ms": 300}),
        )
        .await;
    assert_eq!(status, 200);
    let started = Instant::now();
    let slow = c.stable_token("wxtest1", "secret1", false).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(slow["access_token"], token.as_str(), "{slow}");

    // fail-next -1 does not consume the code: a retry with the same code succeeds.
    let (status, _) = c
        .post(
            "/emulator/fail-next",
            json!({"api": "jscode2session", "errcode": -1}),
        )
        .await;
    assert_eq!(status, 200);
    let code = c.login_code("wxtest1", "bob").await;
    let failed = c.exchange("wxtest1", "secret1", &code).await;
    assert_eq!(errcode(&failed), -1);
    assert!(
        failed["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("system error"),
        "{failed}"
    );
    assert_eq!(
        c.exchange("wxtest1", "secret1", &code).await["openid"],
        openid("wxtest1", "bob")
    );
    c.post(
        "/emulator/fail-next",
        json!({"api": "token", "garbage": true, "http_status": 502}),
    )
    .await;
    let resp = c
        .http
        .get(format!(
            "{}/cgi-bin/token?grant_type=client_credential&appid=wxtest1&secret=secret1",
            c.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 502);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(serde_json::from_str::<Value>(&resp.text().await.unwrap()).is_err());
    assert_eq!(
        c.post("/emulator/fail-next", json!({"api": "nope", "errcode": -1}))
            .await
            .0,
        400
    );
    assert_eq!(
        c.get("/emulator/stats").await.1["failures_injected"].as_u64(),
        Some(2)
    );

    // getwxacodeunlimit: PNG on success, JSON errors otherwise.
    let qr_url = format!("{}/wxa/getwxacodeunlimit?access_token={token}", c.base);
    let resp = c
        .http
        .post(&qr_url)
        .json(&json!({"scene": "id=42", "page": "pages/index/index"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(&resp.bytes().await.unwrap()[..4], &[0x89, 0x50, 0x4E, 0x47]);
    let resp = c
        .http
        .post(&qr_url)
        .json(&json!({"scene": "a b"}))
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(errcode(&resp.json().await.unwrap()), 40129);

    // expire-access-tokens → 42001 on the next business call, and stable_token hands out a new one.
    let (status, body) = c
        .post(
            "/emulator/expire-access-tokens",
            json!({"appid": "wxtest1"}),
        )
        .await;
    assert_eq!((status, body["expired"].as_u64()), (200, Some(1)));
    let phone_code = c
        .post(
            "/emulator/phone-code",
            json!({"appid": "wxtest1", "phone": "+14155550100"}),
        )
        .await
        .1["code"]
        .clone();
    assert_eq!(
        errcode(&c.post(&phone_url, json!({"code": phone_code})).await.1),
        42001
    );
    let fresh = c.stable_token("wxtest1", "secret1", false).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(fresh, token);
    let body = c
        .post(
            &format!("/wxa/business/getuserphonenumber?access_token={fresh}"),
            json!({"code": phone_code}),
        )
        .await
        .1;
    assert_eq!(
        body["phone_info"]["phoneNumber"], "+1 4155550100",
        "42001 left the code unused: {body}"
    );

    // Control API input errors, then reset.
    let resp = c
        .http
        .post(format!("{}/emulator/login-code", c.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.json::<Value>().await.unwrap()["error"].is_string());
    assert_eq!(
        c.post(
            "/emulator/login-code",
            json!({"appid": "wxnope", "user": "a"})
        )
        .await
        .0,
        400
    );
    let (status, body) = c.get("/emulator/login-code").await;
    assert_eq!(status, 405);
    assert!(body["error"].is_string(), "{body}");
    let stats = c.get("/emulator/stats").await.1;
    assert_eq!(
        (
            stats["qrcodes_generated"].as_u64(),
            stats["phone_numbers_returned"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(c.post("/emulator/reset", json!({})).await.0, 200);
    let stats = c.get("/emulator/stats").await.1;
    assert_eq!(stats["jscode2session_calls"].as_u64(), Some(0));
    assert_eq!(
        errcode(
            &c.post(
                &format!("/wxa/business/getuserphonenumber?access_token={fresh}"),
                json!({"code": "x"})
            )
            .await
            .1
        ),
        40001
    );

    handle.stop(false).await;
}
