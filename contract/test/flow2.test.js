'use strict'
// Flow ② (issue 13), MemFire's 手机号授权登录, with the real SDKs: a web user W made through
// @supabase/supabase-js (phone sign-in by SMS code, or phone + password), then on a mini-program
// `signInWithWechat({ code })` → `wechatBindPhone({ code })` for W's number, for both
// supabase-wechat-stable-v2 versions. The fresh WeChat account M is merged into W: the SDK gets
// W, its stored session refreshes into W's tokens once M's short-lived token expires, W still signs
// in on the web, and the next WeChat login is W. With WEAUTH_WECHAT_PHONE_MERGE=false the SDK gets
// 422 phone_exists instead.

const { describe, it, before, after, afterEach } = require('node:test')
const { createClient } = require('@supabase/supabase-js')
const { installWx } = require('../wx-shim')
const { startStack, sleep } = require('../lib/harness')
const { Recorder } = require('../lib/recorder')
const { VARIANTS, storageKey } = require('../lib/sdks')
const { makePhone, expectAppError, expectOk } = require('../lib/app')

installWx()

const PROVISIONAL_JWT_EXP = 20
const PASSWORD = 'web password 123'

const claims = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'))
const isRefresh = (e) => e.method === 'POST' && /\/token\?grant_type=refresh_token$/.test(e.url)

function webClient(stack, rec) {
  return createClient(stack.url, stack.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    global: { fetch: rec.fetch() },
  })
}

/** The web user signs in by a code sent to `typed`; returns the session. */
async function webSignInByCode(assert, rec, stack, typed, label) {
  const web = webClient(stack, rec)
  const before = (await stack.emulator.smsMessages(typed)).length
  expectOk(assert, await rec.call(`signInWithOtp (web, ${label})`, () => web.auth.signInWithOtp({ phone: typed })), 'signInWithOtp')
  const sent = await stack.emulator.smsMessages(typed)
  assert.equal(sent.length, before + 1, 'one SMS with the code')
  const verified = await rec.call(`verifyOtp (web, ${label})`, () => web.auth.verifyOtp({ phone: typed, token: sent[sent.length - 1].otp, type: 'sms' }))
  const data = expectOk(assert, verified, 'verifyOtp')
  return { web, session: data.session, user: data.user }
}

/** pages/phone_login: getPhoneNumber(e) → wx.login → signInWithWechat → wechatBindPhone. */
async function phoneAuthorisedLogin(assert, rec, p, supabase, e164) {
  const e = await p.phoneNumberEvent(e164)
  const { code } = await p.wxLogin()
  const signIn = await rec.call('signInWithWechat (flow ②)', () => supabase.auth.signInWithWechat({ code }))
  const { session } = expectOk(assert, signIn, 'signInWithWechat')
  const bind = await rec.call('wechatBindPhone (flow ②)', () => supabase.auth.wechatBindPhone({ code: e.detail.code }))
  return { session, bind }
}

// Two stacks, started together: merging on (the default `auto`: on, as SMS sign-in works) and off.
let stack
let offStack
const recorders = []
before(async () => {
  ;[stack, offStack] = await Promise.all([
    startStack({
      name: 'flow2',
      sms: 'aliyun',
      // Phone sign-up with a password confirms at once here; codes still go by SMS, and W asks for
      // its second code 20 s after the first (GoTrue's interval is 60 s).
      env: {
        GOTRUE_SMS_AUTOCONFIRM: 'true',
        GOTRUE_SMS_MAX_FREQUENCY: '5s',
        WEAUTH_WECHAT_PROVISIONAL_JWT_EXP: String(PROVISIONAL_JWT_EXP),
      },
    }),
    startStack({ name: 'flow2-off', sms: 'aliyun', env: { GOTRUE_SMS_AUTOCONFIRM: 'true', WEAUTH_WECHAT_PHONE_MERGE: 'false' } }),
  ])
})
after(async () => {
  const failed = recorders.some((r) => r.failed)
  if (failed) for (const s of [stack, offStack]) if (s) console.error(s.logs())
  await Promise.all([stack?.stop({ keepLogs: failed }), offStack?.stop({ keepLogs: failed })])
})

// The SDK versions and the merge-off case use their own numbers and WeChat users, and the wx shim
// keeps each simulated phone apart, so they run at the same time (the 20 s waits overlap).
describe('flow ②', { concurrency: true }, () => {
  for (const sdk of VARIANTS) {
    describe(`flow ②: ${sdk.name}`, () => {
      const rec = new Recorder(`flow2 ${sdk.name}`)
      recorders.push(rec)
      const assert = rec.assert
      const scenario = (name, fn) => it(name, rec.guard(fn))
      let phones = []
      const phone = (user) => {
        const p = makePhone({ stack, recorder: rec, sdk, user: `${user}-${sdk.short}` })
        phones.push(p)
        return p
      }
      // Numbers and WeChat users differ per SDK version: both run on the same stack.
      const n = sdk.short === '2.0.8' ? '08' : '20'

      afterEach(async () => {
        await Promise.all(phones.map((p) => p.close()))
        phones = []
      })

      scenario('a web user of phone sign-in by code: the mini-program lands in it, and its session refreshes into it', async () => {
        const typed = `139111100${n}` // on the web the number is typed the national way
        const e164 = `+86${typed}`
        const { web, user: w } = await webSignInByCode(assert, rec, stack, typed, 'W')
        expectOk(assert, await rec.call('updateUser (web profile)', () => web.auth.updateUser({ data: { nickname: '网页用户', plan: 'pro' } })), 'updateUser')

        const p = phone('wei')
        await p.run(async () => {
          const supabase = p.client()
          const mark = rec.mark()
          const { session: m, bind } = await phoneAuthorisedLogin(assert, rec, p, supabase, e164)
          assert.notEqual(m.user.id, w.id, 'signInWithWechat made a new WeChat account first')
          const mClaims = claims(m.access_token)
          assert.equal(mClaims.exp - mClaims.iat, PROVISIONAL_JWT_EXP, "the fresh WeChat account's token is short-lived")

          const merged = sdk.appUser(assert, expectOk(assert, bind, 'wechatBindPhone').user, `wechatBindPhone → ${sdk.userShape}`)
          assert.equal(merged.id, w.id, 'wechatBindPhone returns the web user')
          assert.equal(merged.phone, `86${typed}`)
          assert.equal(merged.user_metadata.nickname, '网页用户', "the web user's metadata")
          const providers = merged.identities.map((i) => i.provider).sort()
          assert.deepEqual(providers, ['phone', 'wechat'], 'the WeChat identity moved to the web user')

          const me = sdk.appUser(assert, expectOk(assert, await rec.call('getUser (after the merge)', () => supabase.auth.getUser()), 'getUser').user)
          assert.equal(me.id, w.id, 'getUser is the web user')
          assert.equal(me.user_metadata.plan, 'pro')

          // M's token expires; the SDK refreshes (2.0.8's ticker may already have) and the stored
          // session is W's from then on.
          await sleep(Math.max(0, m.expires_at * 1000 - Date.now() + 500))
          const later = sdk.appUser(assert, expectOk(assert, await rec.call('getUser (after expiry)', () => supabase.auth.getUser()), 'getUser').user)
          assert.equal(later.id, w.id)
          const refreshes = rec.since(mark).filter(isRefresh)
          assert.ok(refreshes.length > 0 && refreshes.every((e) => e.status === 200), `the SDK refreshed the session (${refreshes.map((e) => e.status)})`)
          const stored = JSON.parse(wx.getStorageSync(storageKey(stack.url)))
          const wClaims = claims(stored.access_token)
          assert.equal(wClaims.sub, w.id, "the stored access token is the web user's")
          assert.equal(wClaims.exp - wClaims.iat, 3600, 'with the normal lifetime')
          assert.equal(wClaims.session_id, mClaims.session_id, 'in the same session')
          assert.equal(stored.user.id, w.id, 'the stored session.user')
          assert.notEqual(stored.refresh_token, m.refresh_token, 'the refresh token rotated')
        })

        // The web user still signs in on the web by code, and it is the same account.
        const again = await webSignInByCode(assert, rec, stack, typed, 'W again')
        assert.equal(again.user.id, w.id)
        assert.ok(again.user.identities.some((i) => i.provider === 'wechat'), 'now with its WeChat login')

        // The next launch (fresh storage) signs straight into the web user.
        const next = phone('wei')
        await next.run(async () => {
          const supabase = next.client()
          const { code } = await next.wxLogin()
          const { session } = expectOk(assert, await rec.call('signInWithWechat (next launch)', () => supabase.auth.signInWithWechat({ code })), 'signInWithWechat')
          assert.equal(session.user.id, w.id, 'signInWithWechat returns the web user')
          assert.equal(claims(session.access_token).exp - claims(session.access_token).iat, 3600, 'no provisional token any more')
        })
      })

      scenario('a web user of phone + password: merged, and the password still signs in on the web', async () => {
        const e164 = `+86139222200${n}`
        const web = webClient(stack, rec)
        const signUp = await rec.call('signUp (web, phone + password)', () => web.auth.signUp({ phone: e164, password: PASSWORD, options: { data: { plan: 'team' } } }))
        const { user: w, session } = expectOk(assert, signUp, 'signUp')
        assert.ok(session, 'GOTRUE_SMS_AUTOCONFIRM=true: confirmed at once')

        const p = phone('pia')
        await p.run(async () => {
          const supabase = p.client()
          const { session: m, bind } = await phoneAuthorisedLogin(assert, rec, p, supabase, e164)
          assert.notEqual(m.user.id, w.id)
          const merged = sdk.appUser(assert, expectOk(assert, bind, 'wechatBindPhone').user)
          assert.equal(merged.id, w.id)
          assert.equal(merged.user_metadata.plan, 'team')
          const me = sdk.appUser(assert, expectOk(assert, await rec.call('getUser', () => supabase.auth.getUser()), 'getUser').user)
          assert.equal(me.id, w.id)
          assert.equal(me.user_metadata.plan, 'team')
        })

        const pw = await rec.call('signInWithPassword (web, after the merge)', () => webClient(stack, rec).auth.signInWithPassword({ phone: e164, password: PASSWORD }))
        assert.equal(expectOk(assert, pw, 'signInWithPassword').user.id, w.id)

        const next = phone('pia')
        await next.run(async () => {
          const supabase = next.client()
          const { code } = await next.wxLogin()
          const { session: s } = expectOk(assert, await rec.call('signInWithWechat (next launch)', () => supabase.auth.signInWithWechat({ code })), 'signInWithWechat')
          assert.equal(s.user.id, w.id)
        })
      })
    })
  }

  describe('flow ② with WEAUTH_WECHAT_PHONE_MERGE=false', () => {
    const rec = new Recorder('flow2 merge off')
    recorders.push(rec)
    const assert = rec.assert
    const scenario = (name, fn) => it(name, rec.guard(fn))

    for (const sdk of VARIANTS) {
      scenario(`${sdk.name}: the number has a web account → 422 phone_exists, nothing merged`, async () => {
        const e164 = sdk.short === '2.0.8' ? '+8613933330008' : '+8613933330020'
        const signUp = await rec.call('signUp (web)', () => webClient(offStack, rec).auth.signUp({ phone: e164, password: PASSWORD }))
        const w = expectOk(assert, signUp, 'signUp').user

        const p = makePhone({ stack: offStack, recorder: rec, sdk, user: `olga-${sdk.short}` })
        try {
          await p.run(async () => {
            const supabase = p.client()
            const { session: m, bind } = await phoneAuthorisedLogin(assert, rec, p, supabase, e164)
            expectAppError(assert, rec, bind, { status: 422, code: 'phone_exists' })
            assert.equal(bind.data.user, null)
            const me = sdk.appUser(assert, expectOk(assert, await rec.call('getUser', () => supabase.auth.getUser()), 'getUser').user)
            assert.equal(me.id, m.user.id, 'still the WeChat account')
            assert.notEqual(me.id, w.id)
            assert.ok(!me.phone, 'without the number')
          })
        } finally {
          await p.close()
        }
        const pw = await rec.call('signInWithPassword (web)', () => webClient(offStack, rec).auth.signInWithPassword({ phone: e164, password: PASSWORD }))
        const still = expectOk(assert, pw, 'signInWithPassword').user
        assert.equal(still.id, w.id)
        assert.ok(!still.identities.some((i) => i.provider === 'wechat'), 'the web user got no WeChat login')
      })
    }
  })
})
