'use strict'
// Phone sign-in by SMS code (issue 11) through the real SDKs: @supabase/supabase-js on the web and
// supabase-wechat-stable-v2 (2.0.8 and 2.2.0) on a mini-program's phone-login page, against weauth
// sending its codes through Aliyun and Tencent Cloud (the emulator, which checks their signatures)
// and through GoTrue's Send SMS hook (a receiver in this file that checks the Standard Webhooks
// signature). The tests read the codes where a user would: in the SMS the provider or hook got.

const { describe, it, before, after } = require('node:test')
const crypto = require('node:crypto')
const http = require('node:http')
const { createClient } = require('@supabase/supabase-js')
const { installWx } = require('../wx-shim')
const { startStack, sleep } = require('../lib/harness')
const { Recorder } = require('../lib/recorder')
const { VARIANTS } = require('../lib/sdks')
const { makePhone, expectAppError, expectOk } = require('../lib/app')

installWx()

const SMS_MAX_FREQUENCY_S = 3
const PASSWORD = 'correct horse battery'
const digits = (phone) => phone.replace(/\D/g, '')

// ---- the Send SMS hook receiver ----------------------------------------------------------------

const HOOK_KEY = crypto.randomBytes(32)
const HOOK_SECRET = `v1,whsec_${HOOK_KEY.toString('base64')}`

/** Standard Webhooks: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, space-separated. */
function verifiedWebhook(headers, body, key) {
  const id = headers['webhook-id']
  const timestamp = headers['webhook-timestamp']
  const signatures = String(headers['webhook-signature'] || '').split(' ')
  if (!id || !/^\d+$/.test(timestamp || '') || Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false
  const expected = `v1,${crypto.createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest('base64')}`
  return signatures.some((s) => s.length === expected.length && crypto.timingSafeEqual(Buffer.from(s), Buffer.from(expected)))
}

/** An operator's hook endpoint: accepts only verified calls, keeps their payloads, answers `{}`. */
async function startHookReceiver() {
  const receiver = { payloads: [], rejected: 0 }
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      if (req.method !== 'POST' || !verifiedWebhook(req.headers, body, HOOK_KEY)) {
        receiver.rejected++
        res.writeHead(401, { 'content-type': 'application/json' })
        return res.end(JSON.stringify({ error: { http_code: 401, message: 'invalid signature' } }))
      }
      receiver.payloads.push(JSON.parse(body.toString('utf8')))
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{}')
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  receiver.url = `http://127.0.0.1:${server.address().port}/hooks/send-sms`
  receiver.close = () => new Promise((resolve) => server.close(resolve))
  return receiver
}

// ---- where the codes arrive ----------------------------------------------------------------------

/** The SMS sent to `phone` so far, as { otp, ... }, from the emulator or the hook receiver. */
async function smsSent(channel, phone) {
  if (channel.provider === 'hook') {
    return channel.receiver.payloads
      .filter((p) => digits(String(p.sms && p.sms.phone)) === digits(phone) || digits(String(p.user && p.user.phone)) === digits(phone))
      .map((p) => ({ provider: 'hook', otp: p.sms.otp, payload: p }))
  }
  return channel.stack.emulator.smsMessages(phone)
}

/** Runs `send` (the SDK call that sends a code) and returns the one new SMS it caused. */
async function expectOneSms(assert, channel, phone, send) {
  const before = (await smsSent(channel, phone)).length
  const result = await send()
  // A hook call or provider send completes before weauth answers, so the SMS is there now.
  const sent = await smsSent(channel, phone)
  assert.equal(sent.length, before + 1, `one new SMS to ${phone} via ${channel.provider} (had ${before}, now ${sent.length})`)
  const sms = sent[sent.length - 1]
  assert.equal(sms.provider, channel.provider, 'sent through the configured provider')
  assert.match(String(sms.otp), /^\d{6}$/, 'a six-digit code')
  return { result, sms }
}

/** No response body the SDKs got contained `code`. */
function expectCodeNeverInResponses(assert, rec, code) {
  const leaked = rec.exchanges.filter((e) => String(e.responseBody || '').includes(`"${code}"`))
  assert.deepEqual(leaked.map((e) => `${e.method} ${e.url}`), [], 'the code never appears in a response')
}

function webClient(stack, rec) {
  return createClient(stack.url, stack.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    global: { fetch: rec.fetch() },
  })
}

// ---- the tests -----------------------------------------------------------------------------------

describe('phone sign-in by SMS code', () => {
  const rec = new Recorder('phone')
  const assert = rec.assert
  const scenario = (name, fn) => it(name, rec.guard(fn))
  const channels = {}
  let receiver

  before(async () => {
    receiver = await startHookReceiver()
    const [aliyun, tencent, hook] = await Promise.all([
      startStack({
        name: 'phone-aliyun',
        sms: 'aliyun',
        env: {
          GOTRUE_SMS_MAX_FREQUENCY: `${SMS_MAX_FREQUENCY_S}s`,
          GOTRUE_SECURITY_UPDATE_PASSWORD_REQUIRE_REAUTHENTICATION: 'true',
        },
      }),
      startStack({ name: 'phone-tencent', sms: 'tencent' }),
      startStack({
        name: 'phone-hook',
        sms: 'hook',
        env: { GOTRUE_HOOK_SEND_SMS_ENABLED: 'true', GOTRUE_HOOK_SEND_SMS_URI: receiver.url, GOTRUE_HOOK_SEND_SMS_SECRETS: HOOK_SECRET },
      }),
    ])
    channels.aliyun = { provider: 'aliyun', stack: aliyun }
    channels.tencent = { provider: 'tencent', stack: tencent }
    channels.hook = { provider: 'hook', stack: hook, receiver }
  })
  after(async () => {
    const stacks = Object.values(channels).map((c) => c.stack)
    if (rec.failed) for (const s of stacks) console.error(s.logs())
    await Promise.all(stacks.map((s) => s.stop({ keepLogs: rec.failed })))
    await receiver?.close()
  })

  const SIGN_IN_NUMBERS = { aliyun: '+8613811110001', tencent: '+86 138 1111 0002', hook: '8613811110003' }
  for (const provider of ['aliyun', 'tencent', 'hook']) {
    scenario(`${provider}: signInWithOtp({ phone }) → code by SMS → verifyOtp({ type: 'sms' }) → getUser`, async () => {
      const channel = channels[provider]
      const phone = SIGN_IN_NUMBERS[provider]
      const supabase = webClient(channel.stack, rec)
      const { result: sent, sms } = await expectOneSms(assert, channel, phone, () => rec.call(`signInWithOtp (${provider})`, () => supabase.auth.signInWithOtp({ phone })))
      const none = expectOk(assert, sent, 'signInWithOtp')
      assert.equal(none.session, null, 'no session before the code')
      if (provider === 'aliyun') {
        assert.equal(sms.template, 'SMS_480000001', 'the approved template')
        assert.equal(sms.sign_name, 'weauth合约测试', 'the approved signature')
        assert.deepEqual(sms.params, { code: sms.otp }, 'the code in the template variable')
      } else if (provider === 'tencent') {
        assert.equal(sms.template, '2480001')
        assert.equal(sms.sign_name, 'weauth合约测试')
      } else {
        assert.equal(digits(sms.payload.user.phone), digits(phone), 'the hook payload names the user')
        assert.equal(receiver.rejected, 0, 'every hook call verified')
      }

      const verified = await rec.call(`verifyOtp (${provider})`, () => supabase.auth.verifyOtp({ phone, token: sms.otp, type: 'sms' }))
      const { session, user } = expectOk(assert, verified, 'verifyOtp')
      assert.ok(session && session.access_token && session.refresh_token, 'verifyOtp returns a session')
      assert.equal(user.phone, digits(phone), 'phone stored as country code + number')
      assert.ok(user.phone_confirmed_at, 'the code confirmed the phone')
      assert.equal(user.app_metadata.provider, 'phone')

      const me = await rec.call(`getUser (${provider})`, () => supabase.auth.getUser(session.access_token))
      assert.equal(expectOk(assert, me, 'getUser').user.id, user.id)
      expectCodeNeverInResponses(assert, rec, sms.otp)

      // The code is used up.
      const replay = await rec.call('verifyOtp (same code again)', () => supabase.auth.verifyOtp({ phone, token: sms.otp, type: 'sms' }))
      expectAppError(assert, rec, replay, { status: 403, code: 'otp_expired', name: 'AuthApiError' })
    })
  }

  scenario('hook: the receiver refuses calls that are not signed with its key', async () => {
    const body = JSON.stringify({ user: { phone: '8613811110003' }, sms: { otp: '123456' } })
    const id = `msg_${crypto.randomUUID()}`
    const timestamp = String(Math.floor(Date.now() / 1000))
    const forged = `v1,${crypto.createHmac('sha256', 'not-the-key').update(`${id}.${timestamp}.${body}`).digest('base64')}`
    const before = receiver.payloads.length
    const res = await fetch(receiver.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': forged },
      body,
    })
    assert.equal(res.status, 401, 'a forged signature is refused')
    assert.equal(receiver.payloads.length, before, 'and not recorded')
    receiver.rejected = 0
  })

  scenario('aliyun: signUp({ phone, password }) → verifyOtp → signInWithPassword', async () => {
    const channel = channels.aliyun
    const phone = '+8613811110010'
    const supabase = webClient(channel.stack, rec)
    const { result, sms } = await expectOneSms(assert, channel, phone, () => rec.call('signUp (phone + password)', () => supabase.auth.signUp({ phone, password: PASSWORD, options: { data: { plan: 'pro' } } })))
    const signedUp = expectOk(assert, result, 'signUp')
    assert.equal(signedUp.session, null, 'no session until the phone is confirmed (GOTRUE_SMS_AUTOCONFIRM=false)')
    assert.equal(signedUp.user.phone, digits(phone))
    assert.ok(!signedUp.user.phone_confirmed_at, 'not confirmed yet')

    const early = await rec.call('signInWithPassword (unconfirmed)', () => supabase.auth.signInWithPassword({ phone, password: PASSWORD }))
    expectAppError(assert, rec, early, { status: 400, code: 'phone_not_confirmed' })

    const verified = expectOk(assert, await rec.call('verifyOtp (sign-up code)', () => supabase.auth.verifyOtp({ phone, token: sms.otp, type: 'sms' })), 'verifyOtp')
    assert.equal(verified.user.id, signedUp.user.id)
    assert.ok(verified.session && verified.user.phone_confirmed_at, 'confirmed, with a session')

    const pw = expectOk(assert, await rec.call('signInWithPassword (phone)', () => supabase.auth.signInWithPassword({ phone, password: PASSWORD })), 'signInWithPassword')
    assert.equal(pw.user.id, signedUp.user.id)
    assert.equal(pw.user.user_metadata.plan, 'pro')
    assert.ok(pw.session.access_token)
  })

  scenario("aliyun: updateUser({ phone }) → code to the new number → verifyOtp({ type: 'phone_change' })", async () => {
    const channel = channels.aliyun
    const oldPhone = '+8613811110020'
    const newPhone = '13811110021' // typed the national way
    const supabase = createClient(channel.stack.url, channel.stack.anonKey, { auth: { persistSession: true, autoRefreshToken: false }, global: { fetch: rec.fetch() } })
    const { sms: first } = await expectOneSms(assert, channel, oldPhone, () => rec.call('signInWithOtp', () => supabase.auth.signInWithOtp({ phone: oldPhone })))
    const { user } = expectOk(assert, await rec.call('verifyOtp', () => supabase.auth.verifyOtp({ phone: oldPhone, token: first.otp, type: 'sms' })), 'verifyOtp')

    const { result, sms } = await expectOneSms(assert, channel, newPhone, () => rec.call('updateUser ({ phone })', () => supabase.auth.updateUser({ phone: newPhone })))
    const pending = expectOk(assert, result, 'updateUser').user
    assert.equal(pending.phone, digits(oldPhone), 'the old number stays until the code is entered')
    assert.equal(pending.new_phone, `86${newPhone}`, 'new_phone waits for its code')

    const changed = await rec.call("verifyOtp (type 'phone_change')", () => supabase.auth.verifyOtp({ phone: newPhone, token: sms.otp, type: 'phone_change' }))
    const after = expectOk(assert, changed, 'verifyOtp phone_change')
    assert.equal(after.user.id, user.id)
    assert.equal(after.user.phone, `86${newPhone}`)
    const me = expectOk(assert, await rec.call('getUser', () => supabase.auth.getUser()), 'getUser').user
    assert.equal(me.phone, `86${newPhone}`)
    assert.ok(!me.new_phone, 'nothing pending')
  })

  scenario(`aliyun: resend({ type: 'sms' }) waits GOTRUE_SMS_MAX_FREQUENCY (${SMS_MAX_FREQUENCY_S}s here), then sends a new code`, async () => {
    const channel = channels.aliyun
    const phone = '+8613811110030'
    const supabase = webClient(channel.stack, rec)
    const { sms: first } = await expectOneSms(assert, channel, phone, () => rec.call('signInWithOtp', () => supabase.auth.signInWithOtp({ phone })))
    const sentAt = Date.now()

    const tooSoon = await rec.call('resend (too soon)', () => supabase.auth.resend({ type: 'sms', phone }))
    const err = expectAppError(assert, rec, tooSoon, { status: 429, code: 'over_sms_send_rate_limit', name: 'AuthApiError' })
    assert.match(err.message, /^For security purposes, you can only request this after \d+ seconds?\.?$/, "GoTrue's message")
    assert.equal((await smsSent(channel, phone)).length, 1, 'no second SMS')

    await sleep(Math.max(0, sentAt + SMS_MAX_FREQUENCY_S * 1000 + 300 - Date.now()))
    const { result, sms: second } = await expectOneSms(assert, channel, phone, () => rec.call('resend (after the interval)', () => supabase.auth.resend({ type: 'sms', phone })))
    expectOk(assert, result, 'resend')
    assert.notEqual(second.otp, first.otp, 'a new code')

    const old = await rec.call('verifyOtp (the replaced code)', () => supabase.auth.verifyOtp({ phone, token: first.otp, type: 'sms' }))
    expectAppError(assert, rec, old, { status: 403, code: 'otp_expired' })
    const ok = expectOk(assert, await rec.call('verifyOtp (the resent code)', () => supabase.auth.verifyOtp({ phone, token: second.otp, type: 'sms' })), 'verifyOtp')
    assert.equal(ok.user.phone, digits(phone))
  })

  scenario('aliyun: reauthenticate() → updateUser({ password, nonce }) on an old session', async () => {
    const channel = channels.aliyun
    const phone = '+8613811110040'
    const supabase = createClient(channel.stack.url, channel.stack.anonKey, { auth: { persistSession: true, autoRefreshToken: false }, global: { fetch: rec.fetch() } })
    const { sms } = await expectOneSms(assert, channel, phone, () => rec.call('signInWithOtp', () => supabase.auth.signInWithOtp({ phone })))
    const { user } = expectOk(assert, await rec.call('verifyOtp', () => supabase.auth.verifyOtp({ phone, token: sms.otp, type: 'sms' })), 'verifyOtp')

    // A session just signed in may set a password without a code (GoTrue's rule) ...
    expectOk(assert, await rec.call('updateUser (password, fresh session)', () => supabase.auth.updateUser({ password: 'first password 1' })), 'updateUser')
    // ... one signed in two days ago needs the reauthentication code.
    channel.stack.sql(`UPDATE auth.sessions SET created_at = now() - interval '2 days' WHERE user_id = '${user.id}'`)
    const refused = await rec.call('updateUser (password, old session, no nonce)', () => supabase.auth.updateUser({ password: 'second password 2' }))
    expectAppError(assert, rec, refused, { status: 400, code: 'reauthentication_needed' })

    const { result, sms: nonceSms } = await expectOneSms(assert, channel, phone, () => rec.call('reauthenticate', () => supabase.auth.reauthenticate()))
    expectOk(assert, result, 'reauthenticate')
    const wrong = await rec.call('updateUser (wrong nonce)', () => supabase.auth.updateUser({ password: 'second password 2', nonce: nonceSms.otp === '000000' ? '111111' : '000000' }))
    expectAppError(assert, rec, wrong, { status: 422, code: 'reauthentication_not_valid' })
    const changed = await rec.call('updateUser ({ password, nonce })', () => supabase.auth.updateUser({ password: 'second password 2', nonce: nonceSms.otp }))
    assert.equal(expectOk(assert, changed, 'updateUser with nonce').user.id, user.id)

    const other = webClient(channel.stack, rec)
    const pw = await rec.call('signInWithPassword (new password)', () => other.auth.signInWithPassword({ phone, password: 'second password 2' }))
    assert.equal(expectOk(assert, pw, 'signInWithPassword').user.id, user.id)
  })

  scenario('aliyun: a wrong code → AuthApiError otp_expired; the right one still works', async () => {
    const channel = channels.aliyun
    const phone = '+8613811110050'
    const supabase = webClient(channel.stack, rec)
    const { sms } = await expectOneSms(assert, channel, phone, () => rec.call('signInWithOtp', () => supabase.auth.signInWithOtp({ phone })))
    const wrongCode = sms.otp === '123456' ? '654321' : '123456'
    const wrong = await rec.call('verifyOtp (wrong code)', () => supabase.auth.verifyOtp({ phone, token: wrongCode, type: 'sms' }))
    expectAppError(assert, rec, wrong, { status: 403, code: 'otp_expired', name: 'AuthApiError' })
    assert.equal(wrong.data.session, null)
    const right = expectOk(assert, await rec.call('verifyOtp (right code)', () => supabase.auth.verifyOtp({ phone, token: sms.otp, type: 'sms' })), 'verifyOtp')
    assert.ok(right.session)
  })

  scenario("aliyun: Aliyun's isv.BUSINESS_LIMIT_CONTROL → 429 over_sms_send_rate_limit, nothing left behind", async () => {
    const channel = channels.aliyun
    const phone = '+8613811110060'
    const supabase = webClient(channel.stack, rec)
    await channel.stack.emulator.smsFailNext('aliyun', 'isv.BUSINESS_LIMIT_CONTROL')
    const limited = await rec.call('signInWithOtp (Aliyun rate limit)', () => supabase.auth.signInWithOtp({ phone }))
    expectAppError(assert, rec, limited, { status: 429, code: 'over_sms_send_rate_limit', name: 'AuthApiError' })
    assert.equal((await smsSent(channel, phone)).length, 0, 'no SMS went out')
    // The failed send left no code and no send time behind: asking again sends at once.
    const { sms } = await expectOneSms(assert, channel, phone, () => rec.call('signInWithOtp (again)', () => supabase.auth.signInWithOtp({ phone })))
    expectOk(assert, await rec.call('verifyOtp', () => supabase.auth.verifyOtp({ phone, token: sms.otp, type: 'sms' })), 'verifyOtp')
  })

  // pages/phone_login: the user types the number the way Chinese users do, gets the code, enters it.
  for (const sdk of VARIANTS) {
    scenario(`${sdk.name}: a mini-program's phone-login page (signInWithOtp → verifyOtp), number typed as 13800138000`, async () => {
      const channel = channels.aliyun
      const typed = sdk.short === '2.0.8' ? '13800138000' : '13800138020'
      const p = makePhone({ stack: channel.stack, recorder: rec, sdk, user: `phone-login-${sdk.short}` })
      try {
        await p.run(async () => {
          const supabase = p.client()
          // sendCode(): the "获取验证码" button
          const { result, sms } = await expectOneSms(assert, channel, typed, () => rec.call('signInWithOtp (mini-program)', () => supabase.auth.signInWithOtp({ phone: typed })))
          expectOk(assert, result, 'signInWithOtp')
          assert.equal(sms.e164, `+86${typed}`, 'the SMS went to the mainland number')
          // login(): the "登录" button with the code the user read
          const { data, error } = await rec.call('verifyOtp (mini-program)', () => supabase.auth.verifyOtp({ phone: typed, token: sms.otp, type: 'sms' }))
          assert.equal(error, null, `verifyOtp: ${error && error.message}`)
          assert.ok(data.session && data.session.access_token, 'the SDK got a session')
          assert.equal(data.session.user.phone, `86${typed}`)
          const me = sdk.appUser(assert, expectOk(assert, await rec.call('getUser (mini-program)', () => supabase.auth.getUser()), 'getUser').user, `getUser → ${sdk.userShape}`)
          assert.equal(me.id, data.session.user.id, 'the stored session is the new user')
          assert.equal(me.phone, `86${typed}`)
          assert.ok(me.phone_confirmed_at)
        })
      } finally {
        await p.close()
      }
    })
  }
})
