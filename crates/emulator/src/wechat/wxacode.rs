//! `getwxacodeunlimit`: WeChat's request validation and a real (scannable) QR code as PNG.
//!
//! WeChat draws a round "sun code"; the emulator draws an ordinary QR code that encodes
//! `https://weauth.emulator/{appid}?page=..&scene=..` so a phone camera shows what was asked for.

use qrcode::{Color, QrCode};
use serde_json::Value;

pub const DEFAULT_WIDTH: u32 = 430;
const MIN_WIDTH: u32 = 280;
const MAX_WIDTH: u32 = 1280;
const SCENE_MAX_CHARS: usize = 32;
/// Light modules around the code, as the QR spec asks.
const QUIET_ZONE: usize = 4;

/// A validated `getwxacodeunlimit` body.
#[derive(Debug, Clone, PartialEq)]
pub struct WxaCodeRequest {
    pub scene: String,
    pub page: Option<String>,
    pub env_version: String,
    pub width: u32,
    pub line_color: [u8; 3],
    pub is_hyaline: bool,
}

/// 40169 for a missing/empty/too long scene, 40129 for characters WeChat does not allow.
pub fn validate_scene(scene: &str) -> Result<(), i64> {
    if scene.is_empty() || scene.chars().count() > SCENE_MAX_CHARS {
        return Err(40169);
    }
    if !scene
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "!#$&'()*+,/:;=?@-._~".contains(c))
    {
        return Err(40129);
    }
    Ok(())
}

/// Validates the JSON body in WeChat's order; the error is the errcode to answer.
pub fn parse_request(body: &Value) -> Result<WxaCodeRequest, i64> {
    // A JSON value that is not an object is "not json string" to WeChat.
    let obj = body.as_object().ok_or(40169)?;
    // Many SDKs send numeric scenes as numbers; WeChat accepts them.
    let scene = match obj.get("scene") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(40169),
    };
    validate_scene(&scene)?;
    let env_version = match obj.get("env_version") {
        None | Some(Value::Null) => "release".to_string(),
        Some(Value::String(v)) if ["release", "trial", "develop"].contains(&v.as_str()) => {
            v.clone()
        }
        Some(_) => return Err(40097),
    };
    let width = match obj.get("width") {
        None | Some(Value::Null) => DEFAULT_WIDTH,
        Some(v) => {
            let w = v
                .as_f64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or(40097)?;
            if !(f64::from(MIN_WIDTH)..=f64::from(MAX_WIDTH)).contains(&w) {
                return Err(40097);
            }
            w.round() as u32
        }
    };
    let page = match obj.get("page") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.is_empty() => None,
        Some(Value::String(p)) if p.starts_with('/') || p.contains('?') => return Err(41030),
        Some(Value::String(p)) => Some(p.clone()),
        Some(_) => return Err(41030),
    };
    let auto_color = obj
        .get("auto_color")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // WeChat picks a colour itself with auto_color; the emulator keeps black then.
    let line_color = match obj.get("line_color") {
        Some(c) if !auto_color => [channel(c, "r"), channel(c, "g"), channel(c, "b")],
        _ => [0, 0, 0],
    };
    let is_hyaline = obj
        .get("is_hyaline")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(WxaCodeRequest {
        scene,
        page,
        env_version,
        width,
        line_color,
        is_hyaline,
    })
}

/// One `line_color` channel; SDKs send numbers or numeric strings ("0"), clamped to 0..=255.
fn channel(color: &Value, name: &str) -> u8 {
    let v = color.get(name);
    let n = v.and_then(Value::as_f64).or_else(|| {
        v.and_then(Value::as_str)
            .and_then(|s| s.trim().parse().ok())
    });
    n.unwrap_or(0.0).clamp(0.0, 255.0) as u8
}

/// What the QR code encodes.
pub fn content(app_id: &str, req: &WxaCodeRequest) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(page) = &req.page {
        query.append_pair("page", page);
    }
    query.append_pair("scene", &req.scene);
    if req.env_version != "release" {
        query.append_pair("env_version", &req.env_version);
    }
    format!(
        "https://weauth.emulator/{}?{}",
        url::form_urlencoded::byte_serialize(app_id.as_bytes()).collect::<String>(),
        query.finish()
    )
}

/// Renders the code as a `width`×`width` PNG (RGBA with a transparent background if hyaline).
pub fn render_png(app_id: &str, req: &WxaCodeRequest) -> Result<Vec<u8>, String> {
    let code = QrCode::new(content(app_id, req).as_bytes())
        .map_err(|e| format!("cannot build QR code: {e}"))?;
    let modules = code.width();
    let colors = code.to_colors();
    let total = modules + 2 * QUIET_ZONE;
    let size = req.width as usize;
    let channels = if req.is_hyaline { 4 } else { 3 };
    let [r, g, b] = req.line_color;
    let (dark, light): (&[u8], &[u8]) = if req.is_hyaline {
        (&[r, g, b, 255], &[255, 255, 255, 0])
    } else {
        (&[r, g, b], &[255, 255, 255])
    };

    // Map each pixel to a module (nearest-lower), so the image is exactly `width` wide even when
    // `width` is not a multiple of the module count; modules differ by at most one pixel.
    let mut pixels = vec![0u8; size * size * channels];
    for (i, px) in pixels.chunks_exact_mut(channels).enumerate() {
        let (x, y) = (i % size * total / size, i / size * total / size);
        let is_dark = x >= QUIET_ZONE
            && y >= QUIET_ZONE
            && x - QUIET_ZONE < modules
            && y - QUIET_ZONE < modules
            && colors.get((y - QUIET_ZONE) * modules + (x - QUIET_ZONE)) == Some(&Color::Dark);
        px.copy_from_slice(if is_dark { dark } else { light });
    }

    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, req.width, req.width);
    encoder.set_color(if req.is_hyaline {
        png::ColorType::Rgba
    } else {
        png::ColorType::Rgb
    });
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| format!("png: {e}"))?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| format!("png: {e}"))?;
    writer.finish().map_err(|e| format!("png: {e}"))?;
    Ok(out)
}
