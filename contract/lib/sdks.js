'use strict'
// The two published shapes of MemFire's supabase-wechat-stable-v2, as app code sees them.
// Read from the installed packages (node_modules/wechat-sdk-*/dist/main):
//
// * createClient(url, key, options) is the same in both: options are passed through to
//   SupabaseClient except `global.fetch`, which is always replaced by wefetch (wx.request).
//   The session lives in wx storage under `sb-<first label of the host>-auth-token`
//   (gotrue-js/src/lib/helpers.js calls wx.*StorageSync directly; `auth.storage` is ignored).
// * 2.0.x: _userResponse/_sessionResponse return the wefetch response object
//   ({data, status, ok, headers, errMsg}) as `user`, so getUser(), updateUser(), wechatBindPhone()
//   and wechatBindAccount() give `user.data` = the GoTrue user (MemFire's docs: user.data.phone).
//   Errors: a 4xx is AuthApiError(body.msg, status); 502/503/504 are
//   AuthRetryableFetchError(JSON of the response object, status).
// * 2.2.x: `user` is the GoTrue user itself (user.phone). Every HTTP error becomes
//   AuthApiError/AuthRetryableFetchError whose message is the JSON of the whole wx.request
//   response (the GoTrue body is inside it), with the HTTP status.
// * Both: signInWithWechat → GET /wechat_mini/login?code=… (session saved, SIGNED_IN);
//   wechatBindPhone/wechatBindAccount → GET /wechat_mini/bind_phone|bind_account?code=… with the
//   user's token; getUnlimitedQRCode → POST /wechat_mini/unlimited_qrcode with the anon key, reading
//   `data.data.imgBase64` (the body's imgBase64).
// * Refresh: both refresh lazily when a call finds the stored session expired
//   (expires_at <= now, expires_at computed on the client from expires_in), and in the background:
//   2.0.8 every 10 s when the token expires within 3 ticks (30 s), 2.2.0 every 30 s within 90 s.

const sdk208 = require('wechat-sdk-208')
const sdk220 = require('wechat-sdk-220')

function assertWefetchResponse(assert, user, what) {
  assert.ok(user && typeof user === 'object', `${what}: expected the wx.request response object, got ${JSON.stringify(user)}`)
  assert.equal(user.ok, true, `${what}: response.ok`)
  assert.equal(user.status, 200, `${what}: response.status`)
  assert.ok(user.data && typeof user.data === 'object', `${what}: response.data is the GoTrue user`)
  return user.data
}

const VARIANTS = [
  {
    name: 'supabase-wechat-stable-v2@2.0.8',
    short: '2.0.8',
    module: sdk208,
    userShape: 'user.data (the wx.request response)',
    /** What MemFire's 2.0.x docs read: `user.data.phone`, `user.data.user_metadata`. */
    appUser(assert, user, what = 'user') {
      return assertWefetchResponse(assert, user, what)
    },
    refreshTick: { everyMs: 10000, thresholdTicks: 3 },
  },
  {
    name: 'supabase-wechat-stable-v2@2.2.0',
    short: '2.2.0',
    module: sdk220,
    userShape: 'user (the GoTrue user)',
    /** 2.2.x apps read `user.phone`, `user.user_metadata`. */
    appUser(assert, user, what = 'user') {
      assert.ok(user && typeof user === 'object' && typeof user.id === 'string', `${what}: expected the GoTrue user, got ${JSON.stringify(user)}`)
      return user
    },
    refreshTick: { everyMs: 30000, thresholdTicks: 3 },
  },
]

for (const v of VARIANTS) {
  if (typeof v.module.createClient !== 'function') throw new Error(`${v.name} exports no createClient`)
}

/** The storage key the SDK keeps the session under for a given project URL. */
function storageKey(url) {
  return `sb-${new URL(url).hostname.split('.')[0]}-auth-token`
}

module.exports = { VARIANTS, storageKey }
